//! Symbolization of frames TSan printed as `<null> <null> (mod.so+0xOFF)`: the module is
//! looked up in the caller's search paths and the offset resolved from its DWARF with the
//! addr2line crate (inlined calls become separate frames, innermost first, as TSan prints
//! them); when addr2line cannot read a module, `llvm-symbolizer` is tried.
//!
//! Frames whose instruction the compiler put on line 0 come without a line (TSan prints
//! `function file.c`; addr2line finds line 0): they get the line of the nearest earlier
//! line-table row of the same file within the same function, marked
//! [`Frame::line_approximate`].

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::model::{Frame, Location, Report, Stack};

/// What one module offset resolves to: frames innermost first (several when inlined).
type Resolution = Vec<ResolvedFrame>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct ResolvedFrame {
    function: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    line_approximate: bool,
    column: Option<u32>,
}

/// Resolves unsymbolized frames and `<null>` globals. Thread-safe; results are cached per
/// module and offset, so the cost is paid once per distinct frame.
pub struct Symbolizer {
    search_paths: Vec<PathBuf>,
    llvm_symbolizer: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Base name → files, from the search paths (built on first use).
    index: Option<HashMap<String, Vec<PathBuf>>>,
    /// Loaded modules by path; `None` when addr2line could not load it.
    modules: HashMap<PathBuf, Option<Module>>,
    frames: HashMap<(PathBuf, u64), Option<Resolution>>,
    /// Approximate lines of frames printed without one, by module as printed and offset.
    lines: HashMap<(Arc<str>, u64), Option<u32>>,
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("search_paths", &self.search_paths)
            .field("llvm_symbolizer", &self.llvm_symbolizer)
            .finish()
    }
}

/// A module file with its debug info.
struct Module {
    loader: addr2line::Loader,
    /// GNU build id (hex), to refuse a file that is not the build TSan ran.
    build_id: Option<String>,
}

/// Modules are searched this deep below each search path (build trees nest `.so` files).
const MAX_SEARCH_DEPTH: usize = 8;

impl Symbolizer {
    /// `search_paths`: directories (searched recursively) or module files. `llvm-symbolizer`
    /// is looked up on `PATH` and in `/usr/lib/llvm-*/bin`.
    pub fn new(search_paths: Vec<PathBuf>) -> Symbolizer {
        Symbolizer {
            search_paths,
            llvm_symbolizer: find_llvm_symbolizer(),
            state: Mutex::new(State::default()),
        }
    }

    /// Without the `llvm-symbolizer` fallback (addr2line only).
    pub fn without_llvm_symbolizer(mut self) -> Symbolizer {
        self.llvm_symbolizer = None;
        self
    }

    /// Fills every frame of `report` that has a module and offset but no function or file,
    /// gives frames printed without a line an approximate one, and names `<null>` globals
    /// from the module's symbol table. Returns how many frames were resolved or given a line.
    pub fn symbolize_report(&self, report: &mut Report) -> usize {
        if !needs_symbolization(report) {
            return 0;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut resolved = 0;
        for stack in report.all_stacks_mut() {
            resolved += self.symbolize_stack(&mut state, stack);
        }
        for location in &mut report.locations {
            self.name_global(&mut state, location);
        }
        resolved
    }

    fn symbolize_stack(&self, state: &mut State, stack: &mut Stack) -> usize {
        if !stack.frames.iter().any(needs_work) {
            return 0;
        }
        let mut resolved = 0;
        let mut frames = Vec::with_capacity(stack.frames.len());
        for mut frame in std::mem::take(&mut stack.frames) {
            if lacks_line(&frame) {
                if let Some(line) = self.approximate_line(state, &frame) {
                    resolved += 1;
                    frame.line = Some(line);
                    frame.line_approximate = true;
                }
                frames.push(frame);
                continue;
            }
            match self.resolve_frame(state, &frame) {
                Some(resolution) => {
                    resolved += 1;
                    frames.extend(resolution.iter().map(|r| resolved_frame(&frame, r)));
                }
                None => frames.push(frame),
            }
        }
        for (index, frame) in frames.iter_mut().enumerate() {
            frame.index = u32::try_from(index).unwrap_or(u32::MAX);
        }
        stack.frames = frames;
        resolved
    }

    fn resolve_frame(&self, state: &mut State, frame: &Frame) -> Option<Resolution> {
        if !is_unsymbolized(frame) {
            return None;
        }
        let module =
            self.find_module(state, frame.module.as_deref()?, frame.build_id.as_deref())?;
        let offset = frame.offset?;
        let key = (module.clone(), offset);
        if let Some(cached) = state.frames.get(&key) {
            return cached.clone();
        }
        let resolution = resolve_with_addr2line(state, &module, offset)
            .or_else(|| resolve_with_llvm(self.llvm_symbolizer.as_deref()?, &module, offset));
        state.frames.insert(key, resolution.clone());
        resolution
    }

    /// The nearest earlier line of a frame TSan printed with a file but no line.
    fn approximate_line(&self, state: &mut State, frame: &Frame) -> Option<u32> {
        let (module_name, offset, file) =
            (frame.module.clone()?, frame.offset?, frame.file.as_deref()?);
        let key = (module_name, offset);
        if let Some(cached) = state.lines.get(&key) {
            return *cached;
        }
        let line = self
            .find_module(state, &key.0, frame.build_id.as_deref())
            .and_then(|path| nearest_earlier_line(&module(state, &path)?.loader, offset, file));
        state.lines.insert(key, line);
        line
    }

    fn name_global(&self, state: &mut State, location: &mut Location) {
        let Location::Global {
            name,
            module: Some(module_name),
            offset: Some(offset),
            ..
        } = location
        else {
            return;
        };
        if name != "<null>" && name != "??" {
            return;
        }
        let Some(path) = self.find_module(state, module_name, None) else {
            return;
        };
        if let Some(symbol) = module(state, &path).and_then(|m| m.loader.find_symbol(*offset)) {
            *name = symbol.to_string();
        }
    }

    /// The file of `module` (a path as printed, or a base name found in the search paths):
    /// the first candidate whose build id matches `build_id` when TSan printed one.
    fn find_module(
        &self,
        state: &mut State,
        module: &str,
        build_id: Option<&str>,
    ) -> Option<PathBuf> {
        let printed = Path::new(module);
        let mut candidates = Vec::new();
        if printed.is_absolute() && printed.is_file() {
            candidates.push(printed.to_path_buf());
        }
        let name = printed.file_name()?.to_str()?;
        let index = state
            .index
            .get_or_insert_with(|| index_modules(&self.search_paths));
        candidates.extend(index.get(name).into_iter().flatten().cloned());
        candidates
            .into_iter()
            .find(|path| build_id_matches(state, path, build_id))
    }
}

fn needs_symbolization(report: &Report) -> bool {
    report
        .all_stacks()
        .any(|(_, stack)| stack.frames.iter().any(needs_work))
        || report
            .locations
            .iter()
            .any(|l| matches!(l, Location::Global { .. }) && l.global_name().is_none())
}

fn needs_work(frame: &Frame) -> bool {
    is_unsymbolized(frame) || lacks_line(frame)
}

/// Printed with a file but no line: the compiler put the instruction on line 0.
fn lacks_line(frame: &Frame) -> bool {
    frame.file.is_some() && frame.line.is_none() && frame.module.is_some() && frame.offset.is_some()
}

fn is_unsymbolized(frame: &Frame) -> bool {
    frame.function.is_none()
        && frame.file.is_none()
        && frame.module.is_some()
        && frame.offset.is_some()
}

fn resolved_frame(original: &Frame, resolved: &ResolvedFrame) -> Frame {
    Frame {
        function: resolved.function.as_deref().map(Arc::from),
        file: resolved.file.as_deref().map(Arc::from),
        line: resolved.line,
        line_approximate: resolved.line_approximate,
        column: resolved.column,
        symbolized: true,
        ..original.clone()
    }
}

/// Base name → paths of every file below the search paths, in search order.
fn index_modules(search_paths: &[PathBuf]) -> HashMap<String, Vec<PathBuf>> {
    let mut index: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for root in search_paths {
        for entry in walkdir::WalkDir::new(root)
            .max_depth(MAX_SEARCH_DEPTH)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            if let Some(name) = entry.file_name().to_str() {
                index
                    .entry(name.to_string())
                    .or_default()
                    .push(entry.path().to_path_buf());
            }
        }
    }
    index
}

fn module<'a>(state: &'a mut State, path: &Path) -> Option<&'a Module> {
    state
        .modules
        .entry(path.to_path_buf())
        .or_insert_with(|| {
            Some(Module {
                loader: addr2line::Loader::new(path).ok()?,
                build_id: read_build_id(path),
            })
        })
        .as_ref()
}

fn read_build_id(path: &Path) -> Option<String> {
    use object::Object;
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(data.as_slice()).ok()?;
    file.build_id().ok()?.map(hex::encode)
}

/// A readable module; when TSan printed a build id, one with the same id.
fn build_id_matches(state: &mut State, path: &Path, wanted: Option<&str>) -> bool {
    match (module(state, path), wanted) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(found), Some(wanted)) => found
            .build_id
            .as_deref()
            .is_none_or(|found| found.eq_ignore_ascii_case(wanted)),
    }
}

fn resolve_with_addr2line(state: &mut State, path: &Path, offset: u64) -> Option<Resolution> {
    let loader = &module(state, path)?.loader;
    let mut resolution = Vec::new();
    let mut frames = loader.find_frames(offset).ok()?;
    while let Ok(Some(frame)) = frames.next() {
        let function = frame
            .function
            .as_ref()
            .and_then(|f| f.demangle().ok())
            .map(|name| name.into_owned());
        let location = frame.location.as_ref();
        resolution.push(ResolvedFrame {
            function,
            file: location.and_then(|l| l.file).map(str::to_string),
            line: location.and_then(|l| l.line),
            line_approximate: false,
            column: location.and_then(|l| l.column).filter(|c| *c > 0),
        });
    }
    // Only the innermost frame's line comes from the line table (callers' are call sites).
    if let Some(innermost) = resolution.first_mut().filter(|f| f.line.is_none()) {
        if let Some(file) = &innermost.file {
            innermost.line = nearest_earlier_line(loader, offset, file);
            innermost.line_approximate = innermost.line.is_some();
            innermost.column = None;
        }
    }
    if resolution.is_empty() {
        // No DWARF for this address: the symbol table still names the function.
        let function = loader.find_symbol(offset)?.to_string();
        resolution.push(ResolvedFrame {
            function: Some(function),
            file: None,
            line: None,
            line_approximate: false,
            column: None,
        });
    }
    Some(resolution)
}

/// The line of the last line-table row of `file` (compared by base name) at or before
/// `offset`, from the start of the function symbol that holds `offset`.
fn nearest_earlier_line(loader: &addr2line::Loader, offset: u64, file: &str) -> Option<u32> {
    let function_start = loader.find_symbol_info(offset)?.address();
    let wanted = base_name(file);
    loader
        .find_location_range(function_start, offset + 1)
        .ok()?
        .filter(|(address, _, location)| {
            *address <= offset && location.file.is_some_and(|f| base_name(f) == wanted)
        })
        .filter_map(|(address, _, location)| Some((address, location.line?)))
        .max_by_key(|(address, _)| *address)
        .map(|(_, line)| line)
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `llvm-symbolizer --obj=MODULE 0xOFF`: blocks of `function` / `file:line:col` lines.
fn resolve_with_llvm(symbolizer: &Path, module: &Path, offset: u64) -> Option<Resolution> {
    let mut child = Command::new(symbolizer)
        .arg("--inlining")
        .arg("--demangle")
        .arg(format!("--obj={}", module.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()?
        .write_all(format!("{offset:#x}\n").as_bytes())
        .ok()?;
    let output = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    let resolution: Resolution = lines
        .chunks(2)
        .filter_map(|pair| match pair {
            [function, location] => Some(parse_llvm_frame(function, location)),
            _ => None,
        })
        .filter(|f| f.function.is_some() || f.file.is_some())
        .collect();
    (!resolution.is_empty()).then_some(resolution)
}

fn parse_llvm_frame(function: &str, location: &str) -> ResolvedFrame {
    let known = |s: &str| (s != "??" && !s.is_empty()).then(|| s.to_string());
    let mut parts = location.rsplitn(3, ':');
    let column = parts.next().and_then(|c| c.parse().ok()).filter(|c| *c > 0);
    let line = parts.next().and_then(|l| l.parse().ok()).filter(|l| *l > 0);
    let file = parts.next().and_then(known);
    ResolvedFrame {
        function: known(function),
        file,
        line,
        line_approximate: false,
        column,
    }
}

fn find_llvm_symbolizer() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("llvm-symbolizer"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin/llvm-symbolizer"))
            .filter(|p| p.is_file())
            .collect();
        versioned.sort();
        versioned.pop()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_symbolizer_resolves_a_real_module() {
        let Some(llvm) = ftreview_testkit::require(
            "no llvm-symbolizer on PATH or in /usr/lib/llvm-*/bin (.ci/install-system-deps.sh installs llvm-19)",
            find_llvm_symbolizer(),
        ) else {
            return;
        };
        let module =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin/clang/librace.so");
        // The write in cache_insert, as TSan printed it for the clang build.
        let resolution = resolve_with_llvm(&llvm, &module, 0x1162).unwrap();
        assert_eq!(resolution[0].function.as_deref(), Some("cache_insert"));
        assert_eq!(resolution[0].line, Some(5));
        assert!(resolution[0]
            .file
            .as_deref()
            .unwrap()
            .ends_with("shared_race.c"));
    }

    #[test]
    fn llvm_symbolizer_lines() {
        let frame = parse_llvm_frame("cache_insert", "/src/shared_race.c:5:16");
        assert_eq!(frame.function.as_deref(), Some("cache_insert"));
        assert_eq!(frame.file.as_deref(), Some("/src/shared_race.c"));
        assert_eq!((frame.line, frame.column), (Some(5), Some(16)));
        let unknown = parse_llvm_frame("??", "??:0:0");
        assert_eq!(
            (unknown.function, unknown.file, unknown.line),
            (None, None, None)
        );
    }
}
