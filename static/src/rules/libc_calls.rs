//! FT601: libc functions that keep hidden static state or are documented MT-Unsafe.

use crate::facts::EventKind;
use crate::model::{Confidence, FixKind, Rule, Severity};
use crate::program::Program;
use crate::rules::{call_symbol, protection, Draft, Sink};

/// (function, severity, replacement, the kind of that replacement)
const UNSAFE: &[(&str, Severity, &str, FixKind)] = &[
    (
        "strtok",
        Severity::Medium,
        "strtok_r",
        FixKind::ThreadSafeApi,
    ),
    (
        "localtime",
        Severity::Medium,
        "localtime_r (localtime_s on Windows)",
        FixKind::ThreadSafeApi,
    ),
    (
        "gmtime",
        Severity::Medium,
        "gmtime_r (gmtime_s on Windows)",
        FixKind::ThreadSafeApi,
    ),
    (
        "asctime",
        Severity::Medium,
        "asctime_r or strftime",
        FixKind::ThreadSafeApi,
    ),
    (
        "ctime",
        Severity::Medium,
        "ctime_r or strftime",
        FixKind::ThreadSafeApi,
    ),
    (
        "strerror",
        Severity::Medium,
        "strerror_r, or PyErr_SetFromErrno",
        FixKind::ThreadSafeApi,
    ),
    (
        "setenv",
        Severity::Medium,
        "do it once at import, before threads start",
        FixKind::OnceInit,
    ),
    (
        "unsetenv",
        Severity::Medium,
        "do it once at import, before threads start",
        FixKind::OnceInit,
    ),
    (
        "putenv",
        Severity::Medium,
        "do it once at import, before threads start",
        FixKind::OnceInit,
    ),
    (
        "setlocale",
        Severity::Medium,
        "uselocale with a per-thread locale_t",
        FixKind::ThreadLocal,
    ),
    (
        "localeconv",
        Severity::Low,
        "nl_langinfo_l / a per-thread locale_t",
        FixKind::ThreadLocal,
    ),
    (
        "tmpnam",
        Severity::Medium,
        "mkstemp",
        FixKind::ThreadSafeApi,
    ),
    (
        "gethostbyname",
        Severity::Medium,
        "getaddrinfo",
        FixKind::ThreadSafeApi,
    ),
    (
        "gethostbyaddr",
        Severity::Medium,
        "getnameinfo",
        FixKind::ThreadSafeApi,
    ),
    (
        "inet_ntoa",
        Severity::Medium,
        "inet_ntop",
        FixKind::ThreadSafeApi,
    ),
    (
        "getpwnam",
        Severity::Medium,
        "getpwnam_r",
        FixKind::ThreadSafeApi,
    ),
    (
        "getpwuid",
        Severity::Medium,
        "getpwuid_r",
        FixKind::ThreadSafeApi,
    ),
    (
        "getgrnam",
        Severity::Medium,
        "getgrnam_r",
        FixKind::ThreadSafeApi,
    ),
    (
        "getgrgid",
        Severity::Medium,
        "getgrgid_r",
        FixKind::ThreadSafeApi,
    ),
    (
        "getlogin",
        Severity::Medium,
        "getlogin_r",
        FixKind::ThreadSafeApi,
    ),
    (
        "ttyname",
        Severity::Medium,
        "ttyname_r",
        FixKind::ThreadSafeApi,
    ),
    (
        "strsignal",
        Severity::Low,
        "a static table of messages",
        FixKind::ThreadSafeApi,
    ),
    ("ecvt", Severity::Medium, "snprintf", FixKind::ThreadSafeApi),
    ("fcvt", Severity::Medium, "snprintf", FixKind::ThreadSafeApi),
    ("crypt", Severity::Medium, "crypt_r", FixKind::ThreadSafeApi),
    (
        "rand",
        Severity::Low,
        "rand_r, or a per-thread/locked generator",
        FixKind::ThreadSafeApi,
    ),
    (
        "srand",
        Severity::Low,
        "a per-thread/locked generator",
        FixKind::ThreadLocal,
    ),
    (
        "drand48",
        Severity::Low,
        "erand48 with caller-owned state",
        FixKind::ThreadSafeApi,
    ),
    (
        "lrand48",
        Severity::Low,
        "nrand48 with caller-owned state",
        FixKind::ThreadSafeApi,
    ),
    (
        "mrand48",
        Severity::Low,
        "jrand48 with caller-owned state",
        FixKind::ThreadSafeApi,
    ),
    (
        "getenv",
        Severity::Low,
        "read it once at import; safe only while nothing calls setenv",
        FixKind::OnceInit,
    ),
    (
        "readdir",
        Severity::Low,
        "one DIR* per thread (readdir is safe on distinct streams)",
        FixKind::ThreadLocal,
    ),
    (
        "mbtowc",
        Severity::Low,
        "mbrtowc with caller-owned state",
        FixKind::ThreadSafeApi,
    ),
    (
        "wctomb",
        Severity::Low,
        "wcrtomb with caller-owned state",
        FixKind::ThreadSafeApi,
    ),
    (
        "mblen",
        Severity::Low,
        "mbrlen with caller-owned state",
        FixKind::ThreadSafeApi,
    ),
    (
        "lgamma",
        Severity::Low,
        "lgamma_r (writes the global signgam)",
        FixKind::ThreadSafeApi,
    ),
    (
        "getopt",
        Severity::Low,
        "parse arguments before starting threads",
        FixKind::OnceInit,
    ),
];

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    for (file, func) in program.functions() {
        for event in &func.events {
            let EventKind::Call { callee, .. } = &event.kind else {
                continue;
            };
            let Some(&(name, severity, replacement, fix_kind)) =
                UNSAFE.iter().find(|(n, _, _, _)| n == callee)
            else {
                continue;
            };
            let protected_by = protection(program, func, event);
            let (severity, message) = match &protected_by {
                Some(how) => (Severity::Info, format!("`{name}` is not thread-safe; called under {how}")),
                None => (severity, format!("`{name}` is not thread-safe: it uses hidden static state that concurrent calls overwrite")),
            };
            sink.add(Draft {
                rule: Rule::ThreadUnsafeLibc,
                severity,
                confidence: Confidence::High,
                file,
                span: event.span,
                function: Some(func.name.clone()),
                symbol: Some(call_symbol(name)),
                message,
                fix: if fix_kind == FixKind::OnceInit {
                    replacement.to_string() // already an instruction
                } else {
                    format!("use {replacement}")
                },
                fix_kind,
                protected_by,
            });
        }
    }
}
