//! FT601: libc functions that keep hidden static state or are documented MT-Unsafe.

use crate::facts::EventKind;
use crate::model::{Confidence, Rule, Severity};
use crate::program::Program;
use crate::rules::{call_symbol, protection, Draft, Sink};

/// (function, severity, replacement)
const UNSAFE: &[(&str, Severity, &str)] = &[
    ("strtok", Severity::Medium, "strtok_r"),
    (
        "localtime",
        Severity::Medium,
        "localtime_r (localtime_s on Windows)",
    ),
    ("gmtime", Severity::Medium, "gmtime_r (gmtime_s on Windows)"),
    ("asctime", Severity::Medium, "asctime_r or strftime"),
    ("ctime", Severity::Medium, "ctime_r or strftime"),
    (
        "strerror",
        Severity::Medium,
        "strerror_r, or PyErr_SetFromErrno",
    ),
    (
        "setenv",
        Severity::Medium,
        "do it once at import, before threads start",
    ),
    (
        "unsetenv",
        Severity::Medium,
        "do it once at import, before threads start",
    ),
    (
        "putenv",
        Severity::Medium,
        "do it once at import, before threads start",
    ),
    (
        "setlocale",
        Severity::Medium,
        "uselocale with a per-thread locale_t",
    ),
    (
        "localeconv",
        Severity::Low,
        "nl_langinfo_l / a per-thread locale_t",
    ),
    ("tmpnam", Severity::Medium, "mkstemp"),
    ("gethostbyname", Severity::Medium, "getaddrinfo"),
    ("gethostbyaddr", Severity::Medium, "getnameinfo"),
    ("inet_ntoa", Severity::Medium, "inet_ntop"),
    ("getpwnam", Severity::Medium, "getpwnam_r"),
    ("getpwuid", Severity::Medium, "getpwuid_r"),
    ("getgrnam", Severity::Medium, "getgrnam_r"),
    ("getgrgid", Severity::Medium, "getgrgid_r"),
    ("getlogin", Severity::Medium, "getlogin_r"),
    ("ttyname", Severity::Medium, "ttyname_r"),
    ("strsignal", Severity::Low, "a static table of messages"),
    ("ecvt", Severity::Medium, "snprintf"),
    ("fcvt", Severity::Medium, "snprintf"),
    ("crypt", Severity::Medium, "crypt_r"),
    (
        "rand",
        Severity::Low,
        "rand_r, or a per-thread/locked generator",
    ),
    ("srand", Severity::Low, "a per-thread/locked generator"),
    ("drand48", Severity::Low, "erand48 with caller-owned state"),
    ("lrand48", Severity::Low, "nrand48 with caller-owned state"),
    ("mrand48", Severity::Low, "jrand48 with caller-owned state"),
    (
        "getenv",
        Severity::Low,
        "read it once at import; safe only while nothing calls setenv",
    ),
    (
        "readdir",
        Severity::Low,
        "one DIR* per thread (readdir is safe on distinct streams)",
    ),
    ("mbtowc", Severity::Low, "mbrtowc with caller-owned state"),
    ("wctomb", Severity::Low, "wcrtomb with caller-owned state"),
    ("mblen", Severity::Low, "mbrlen with caller-owned state"),
    (
        "lgamma",
        Severity::Low,
        "lgamma_r (writes the global signgam)",
    ),
    (
        "getopt",
        Severity::Low,
        "parse arguments before starting threads",
    ),
];

pub(crate) fn check(program: &Program, sink: &mut Sink) {
    for (file, func) in program.functions() {
        for event in &func.events {
            let EventKind::Call { callee, .. } = &event.kind else {
                continue;
            };
            let Some(&(name, severity, replacement)) = UNSAFE.iter().find(|(n, _, _)| n == callee)
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
                fix: format!("use {replacement}"),
                protected_by,
            });
        }
    }
}
