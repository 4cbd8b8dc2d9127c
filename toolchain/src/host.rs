//! Facts about this machine: compilers and their TSan runtimes, the symbolizer, the ASLR
//! trap, and the build prerequisites (each named with the Debian package that provides it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Compiler family. Extensions must be built by the same family as the interpreter: the TSan
/// runtimes of gcc and clang differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    Gcc,
    Clang,
}

impl Compiler {
    pub fn name(self) -> &'static str {
        match self {
            Compiler::Gcc => "gcc",
            Compiler::Clang => "clang",
        }
    }

    /// Family of a `CC` value as recorded in sysconfig (`clang-19 -pthread` → clang).
    pub fn from_cc(cc: &str) -> Compiler {
        let program = cc.split_whitespace().next().unwrap_or_default();
        let file = Path::new(program)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file.contains("clang") {
            Compiler::Clang
        } else {
            Compiler::Gcc
        }
    }
}

impl std::fmt::Display for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Compiler {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Compiler> {
        match s {
            "gcc" => Ok(Compiler::Gcc),
            "clang" => Ok(Compiler::Clang),
            other => bail!("unknown compiler `{other}` (expected gcc or clang)"),
        }
    }
}

/// Which compiler the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompilerChoice {
    /// clang when it has a working TSan runtime and a symbolizer (faster builds, column
    /// numbers in reports), gcc otherwise.
    #[default]
    Auto,
    Exactly(Compiler),
}

/// A compiler found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompilerInfo {
    pub family: Compiler,
    /// Command name as found on PATH (`clang-19`, `gcc`).
    pub cc: String,
    /// Matching C++ compiler, when present (CPython's configure probes it).
    pub cxx: Option<String>,
    /// Whether `-fsanitize=thread` compiles and links a test program.
    pub tsan_links: bool,
    /// First line of `--version`.
    pub version: String,
}

/// Looks for a compiler of `family` on PATH: for clang the plain name first, then the
/// versioned Debian names (`clang-20`, `clang-19`, ...).
pub fn find_compiler(family: Compiler) -> Option<CompilerInfo> {
    let (cc, cxx) = match family {
        Compiler::Gcc => ("gcc".to_string(), "g++".to_string()),
        Compiler::Clang => {
            let cc = clang_candidates()
                .into_iter()
                .find(|c| which(c).is_some())?;
            let cxx = cc.replace("clang", "clang++");
            (cc, cxx)
        }
    };
    which(&cc)?;
    Some(CompilerInfo {
        family,
        version: first_line_of(&cc, &["--version"]).unwrap_or_default(),
        tsan_links: tsan_links(&cc),
        cxx: which(&cxx).map(|_| cxx),
        cc,
    })
}

fn clang_candidates() -> Vec<String> {
    let mut names = vec!["clang".to_string()];
    names.extend((14..=22).rev().map(|v| format!("clang-{v}")));
    names
}

/// Resolves the user's choice to a usable compiler, or says what to install.
pub fn choose_compiler(choice: CompilerChoice) -> Result<CompilerInfo> {
    match choice {
        CompilerChoice::Exactly(family) => {
            let Some(info) = find_compiler(family) else {
                bail!("{family} is not installed; {}", install_hint_for(family));
            };
            if !info.tsan_links {
                bail!(
                    "{} cannot link a -fsanitize=thread program (TSan runtime missing); {}",
                    info.cc,
                    install_hint_for(family)
                );
            }
            Ok(info)
        }
        CompilerChoice::Auto => {
            let clang = find_compiler(Compiler::Clang)
                .filter(|c| c.tsan_links && symbolizer_for(Compiler::Clang).is_some());
            if let Some(clang) = clang {
                return Ok(clang);
            }
            match find_compiler(Compiler::Gcc).filter(|c| c.tsan_links) {
                Some(gcc) => Ok(gcc),
                None => bail!(
                    "no compiler with a working ThreadSanitizer runtime found; install one: \
                     `apt-get install clang-19 libclang-rt-19-dev llvm-19` or \
                     `apt-get install build-essential` (gcc with libtsan)"
                ),
            }
        }
    }
}

fn install_hint_for(family: Compiler) -> &'static str {
    match family {
        Compiler::Gcc => "install it with `apt-get install build-essential` (gcc and libtsan)",
        Compiler::Clang => {
            "install it with `apt-get install clang-19 libclang-rt-19-dev llvm-19` \
             (clang, its TSan runtime and llvm-symbolizer)"
        }
    }
}

/// Compiles and links an empty program with `-fsanitize=thread`: the only reliable way to
/// know the TSan runtime is there. Probed once per compiler per process.
fn tsan_links(cc: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static PROBED: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let probed = PROBED.get_or_init(Default::default);
    if let Some(&known) = probed.lock().expect("not poisoned").get(cc) {
        return known;
    }
    let links = probe_tsan_link(cc);
    probed
        .lock()
        .expect("not poisoned")
        .insert(cc.to_string(), links);
    links
}

fn probe_tsan_link(cc: &str) -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let src = dir.path().join("probe.c");
    if std::fs::write(&src, "int main(void) { return 0; }\n").is_err() {
        return false;
    }
    Command::new(cc)
        .arg("-fsanitize=thread")
        .arg(&src)
        .arg("-o")
        .arg(dir.path().join("probe"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `llvm-symbolizer` for clang's TSan runtime: on PATH, or in Debian's `/usr/lib/llvm-N/bin`.
/// gcc's libtsan symbolizes by itself, so it needs none.
pub fn symbolizer_for(compiler: Compiler) -> Option<PathBuf> {
    if compiler == Compiler::Gcc {
        return None;
    }
    which("llvm-symbolizer").or_else(|| {
        (14..=22)
            .rev()
            .map(|v| PathBuf::from(format!("/usr/lib/llvm-{v}/bin/llvm-symbolizer")))
            .find(|p| p.is_file())
    })
}

/// Linux kernels with more than 28 bits of mmap randomization place mappings where TSan's
/// shadow memory must go, and TSan aborts at startup (`FATAL: ThreadSanitizer: unexpected
/// memory mapping`). `setarch -R` disables randomization for one process tree.
/// `FTREVIEW_SETARCH=1` (or `0`) overrides the detection.
pub fn needs_setarch() -> bool {
    match std::env::var("FTREVIEW_SETARCH").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => mmap_rnd_bits().is_some_and(|bits| bits > 28),
    }
}

pub fn mmap_rnd_bits() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/vm/mmap_rnd_bits")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `setarch <arch> -R`: the unprivileged workaround for the ASLR trap.
pub fn setarch_prefix() -> Vec<OsString> {
    vec!["setarch".into(), std::env::consts::ARCH.into(), "-R".into()]
}

/// A command for `program`, under `setarch -R` when this machine needs it.
pub fn command(program: impl Into<OsString>) -> Command {
    let mut argv = if needs_setarch() {
        setarch_prefix()
    } else {
        Vec::new()
    };
    argv.push(program.into());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

/// A header or tool the CPython build needs, with the Debian package that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisite {
    pub what: &'static str,
    pub package: &'static str,
    /// Without it the build fails or the interpreter cannot run pip.
    pub required: bool,
    pub present: bool,
}

/// Headers probed with the chosen compiler's preprocessor (so its include path is what
/// counts), and the tools the build runs.
const HEADERS: &[(&str, &str, &str, bool)] = &[
    ("ffi.h", "libffi (ctypes)", "libffi-dev", true),
    ("zlib.h", "zlib (pip, wheels)", "zlib1g-dev", true),
    (
        "openssl/ssl.h",
        "OpenSSL (pip over https)",
        "libssl-dev",
        true,
    ),
    ("bzlib.h", "bzip2", "libbz2-dev", false),
    ("lzma.h", "xz/lzma", "liblzma-dev", false),
    ("sqlite3.h", "sqlite3", "libsqlite3-dev", false),
    ("uuid/uuid.h", "uuid", "uuid-dev", false),
    ("readline/readline.h", "readline", "libreadline-dev", false),
];

/// Checks the build prerequisites for `cc`.
pub fn prerequisites(cc: &str) -> Vec<Prerequisite> {
    let mut found: Vec<Prerequisite> = HEADERS
        .iter()
        .map(|&(header, what, package, required)| Prerequisite {
            what,
            package,
            required,
            present: header_present(cc, header),
        })
        .collect();
    found.push(Prerequisite {
        what: "make",
        package: "make",
        required: true,
        present: which("make").is_some(),
    });
    if needs_setarch() {
        found.push(Prerequisite {
            what: "setarch (ASLR workaround)",
            package: "util-linux",
            required: true,
            present: which("setarch").is_some(),
        });
    }
    found
}

/// Fails naming every missing required prerequisite and the one command that installs them.
pub fn ensure_prerequisites(cc: &str) -> Result<Vec<Prerequisite>> {
    let all = prerequisites(cc);
    let missing: Vec<&Prerequisite> = all.iter().filter(|p| p.required && !p.present).collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|p| p.what).collect();
        let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
        bail!(
            "missing build prerequisites: {}; install them with `apt-get install {}`",
            names.join(", "),
            packages.join(" ")
        );
    }
    Ok(all)
}

fn header_present(cc: &str, header: &str) -> bool {
    let Ok(mut child) = Command::new(cc)
        .args(["-E", "-x", "c", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = writeln!(stdin, "#include <{header}>");
    }
    child.wait().is_ok_and(|s| s.success())
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn first_line_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_family_from_sysconfig_cc() {
        assert_eq!(Compiler::from_cc("clang-19 -pthread"), Compiler::Clang);
        assert_eq!(Compiler::from_cc("/usr/bin/clang"), Compiler::Clang);
        assert_eq!(Compiler::from_cc("gcc -pthread"), Compiler::Gcc);
        assert_eq!(Compiler::from_cc("x86_64-linux-gnu-gcc"), Compiler::Gcc);
    }

    #[test]
    fn compiler_names_round_trip() {
        for c in [Compiler::Gcc, Compiler::Clang] {
            assert_eq!(c.name().parse::<Compiler>().unwrap(), c);
        }
        assert!("msvc".parse::<Compiler>().is_err());
    }

    #[test]
    fn the_setarch_prefix_runs_commands_without_address_randomization() {
        let prefix = setarch_prefix();
        let out = Command::new(&prefix[0])
            .args(&prefix[1..])
            .args(["cat", "/proc/self/personality"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // ADDR_NO_RANDOMIZE is 0x0040000.
        let personality =
            u32::from_str_radix(String::from_utf8_lossy(&out.stdout).trim(), 16).unwrap();
        assert_ne!(personality & 0x0040000, 0, "personality {personality:x}");
    }

    #[test]
    fn which_finds_sh_and_rejects_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("definitely-not-a-program-ftreview").is_none());
    }
}
