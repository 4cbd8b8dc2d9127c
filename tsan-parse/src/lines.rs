//! Parsers for the single lines of a report. Byte-level and allocation-free until a field is
//! kept: this is the hot path over gigabytes of logs.

use std::sync::Arc;

use memchr::{memchr, memchr_iter, memmem, memrchr, memrchr_iter};

use crate::model::{
    Access, AccessKind, CycleMutex, Frame, HeldMutex, Location, Stack, Thread, MAIN_THREAD,
};

pub(crate) fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(valid) => valid.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

pub(crate) fn trim_start(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

pub(crate) fn trim_end(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = bytes {
        bytes = rest;
    }
    bytes
}

/// First `needle` in a short `haystack` (a line): candidates by its first byte, which is
/// cheaper than building a `memmem` searcher per call.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (first, _) = needle.split_first()?;
    memchr_iter(*first, haystack).find(|&at| haystack[at..].starts_with(needle))
}

/// Last `needle` in a short `haystack`.
pub(crate) fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (first, _) = needle.split_first()?;
    memrchr_iter(*first, haystack).find(|&at| haystack[at..].starts_with(needle))
}

/// Leading decimal digits of `bytes` and what follows them.
pub(crate) fn leading_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = bytes[..digits]
        .iter()
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    Some((value, &bytes[digits..]))
}

fn parse_u32(bytes: &[u8]) -> Option<u32> {
    match leading_u64(bytes)? {
        (value, []) => u32::try_from(value).ok(),
        _ => None,
    }
}

/// `0x1f` (or `1f`) as a number; the whole input must be hex.
pub(crate) fn parse_hex(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.strip_prefix(b"0x").unwrap_or(bytes);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, b| {
        let digit = (*b as char).to_digit(16)?;
        Some(acc << 4 | u64::from(digit))
    })
}

/// Leading `0x…` hex number and what follows it.
fn leading_hex(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.strip_prefix(b"0x")?;
    let len = digits.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    Some((parse_hex(&digits[..len])?, &digits[len..]))
}

/// Removes a CI timestamp before the log text: `2024-05-01T12:34:56.1234567Z `,
/// `[2024-05-01 12:34:56] `, `12:34:56.789 `, `2024-05-01 12:34:56,123 `.
pub(crate) fn strip_timestamp(line: &[u8]) -> &[u8] {
    match line.first() {
        Some(b'[') => strip_bracketed_timestamp(line).unwrap_or(line),
        Some(b) if b.is_ascii_digit() => {
            let once = strip_timestamp_token(line);
            // A date and a time may be two tokens.
            match once.first() {
                Some(b) if b.is_ascii_digit() && once.len() < line.len() => {
                    strip_timestamp_token(once)
                }
                _ => once,
            }
        }
        _ => line,
    }
}

fn is_timestamp_byte(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b'T' | b'Z' | b'+' | b',' | b'/')
}

fn strip_timestamp_token(line: &[u8]) -> &[u8] {
    let Some(space) = memchr(b' ', line) else {
        return line;
    };
    let token = &line[..space];
    let looks_like_time = token.len() >= 5
        && token.iter().all(|b| is_timestamp_byte(*b))
        && token.iter().any(|b| matches!(b, b':' | b'-'));
    if looks_like_time {
        &line[space + 1..]
    } else {
        line
    }
}

fn strip_bracketed_timestamp(line: &[u8]) -> Option<&[u8]> {
    let close = memchr(b']', &line[..line.len().min(48)])?;
    let inner = &line[1..close];
    let looks_like_time = inner.len() >= 5
        && inner.iter().all(|b| is_timestamp_byte(*b) || *b == b' ')
        && inner.contains(&b':');
    if !looks_like_time {
        return None;
    }
    let rest = &line[close + 1..];
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// Removes ANSI colour escapes (`\x1b[...m`), which TSan prints when stderr is a terminal.
pub(crate) fn strip_ansi(line: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut rest = line;
    while let Some(esc) = memchr(0x1b, rest) {
        out.extend_from_slice(&rest[..esc]);
        let after = &rest[esc + 1..];
        let end = if after.first() == Some(&b'[') {
            after
                .iter()
                .position(|b| b.is_ascii_alphabetic())
                .map_or(after.len(), |p| p + 1)
        } else {
            0
        };
        rest = &after[end..];
    }
    out.extend_from_slice(rest);
}

/// Names seen recently (functions, files, modules, build ids), so that a name repeated
/// across frames and reports is one shared allocation and is not validated again. A
/// direct-mapped cache: bounded, and a miss only costs what no cache would.
pub(crate) struct SharedNames {
    slots: Vec<Option<Arc<str>>>,
}

const NAME_SLOTS: usize = 4096;

impl Default for SharedNames {
    fn default() -> Self {
        SharedNames {
            slots: vec![None; NAME_SLOTS],
        }
    }
}

impl SharedNames {
    fn get(&mut self, bytes: &[u8]) -> Arc<str> {
        let slot = &mut self.slots[name_hash(bytes) % NAME_SLOTS];
        match slot {
            Some(name) if name.as_bytes() == bytes => Arc::clone(name),
            _ => {
                let name: Arc<str> = Arc::from(text(bytes));
                *slot = Some(Arc::clone(&name));
                name
            }
        }
    }
}

/// A fast, non-cryptographic hash of a short name (FxHash-style, eight bytes at a time).
fn name_hash(bytes: &[u8]) -> usize {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        hash = (hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
    for byte in chunks.remainder() {
        hash = (hash.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(SEED);
    }
    (hash >> 32) as usize
}

/// `#N function file:line[:col] (module[:arch]+0xOFF) (BuildId: …)`, starting at `#`.
/// Fills `frame`, a default one already in place in its stack (frames are large: building
/// them where they stay saves copying). False when `line` is not a frame.
pub(crate) fn parse_frame_into(line: &[u8], names: &mut SharedNames, frame: &mut Frame) -> bool {
    let Some((index, rest)) = frame_number(line) else {
        return false;
    };
    frame.index = index;
    let mut rest = trim_end(trim_start(rest));
    if rest.ends_with(b")") {
        if let Some(open) = memrchr(b'(', rest) {
            if open > 0 && rest[open..].starts_with(b"(BuildId: ") {
                frame.build_id = Some(names.get(&rest[open + 10..rest.len() - 1]));
                rest = trim_end(&rest[..open]);
            }
        }
    }
    if rest.ends_with(b")") {
        if let Some(open) = memrchr(b'(', rest) {
            if set_module_part(&rest[open + 1..rest.len() - 1], frame, names) {
                rest = trim_end(&rest[..open]);
            }
        }
    }
    let (function, location) = split_function_and_location(rest);
    frame.function = non_null(function).map(|name| names.get(name));
    if let Some(location) = location.and_then(non_null) {
        parse_source_location(location, frame, names);
    }
    true
}

/// `#N ` and the rest of the line.
fn frame_number(line: &[u8]) -> Option<(u32, &[u8])> {
    let body = line.strip_prefix(b"#")?;
    let space = memchr(b' ', body)?;
    Some((parse_u32(&body[..space])?, &body[space + 1..]))
}

fn non_null(bytes: &[u8]) -> Option<&[u8]> {
    (!bytes.is_empty() && bytes != b"<null>").then_some(bytes)
}

/// The parts of `(module[:arch]+0xOFF)` or `(0xPC)`.
enum ModulePart<'a> {
    Module {
        module: &'a [u8],
        arch: Option<&'a [u8]>,
        offset: u64,
    },
    Pc(u64),
}

/// `module[:arch]+0xOFF` or a bare `0xPC`.
fn parse_module_part(inner: &[u8]) -> Option<ModulePart<'_>> {
    if let Some(plus) = memrchr(b'+', inner) {
        let offset = &inner[plus + 1..];
        if offset.starts_with(b"0x") {
            if let Some(offset) = parse_hex(offset) {
                let (module, arch) = split_arch(&inner[..plus]);
                return Some(ModulePart::Module {
                    module,
                    arch,
                    offset,
                });
            }
        }
    }
    if inner.starts_with(b"0x") {
        return parse_hex(inner).map(ModulePart::Pc);
    }
    None
}

/// Fills the module fields of `frame`; false if `inner` is not a module part.
fn set_module_part(inner: &[u8], frame: &mut Frame, names: &mut SharedNames) -> bool {
    match parse_module_part(inner) {
        Some(ModulePart::Module {
            module,
            arch,
            offset,
        }) => {
            frame.module = Some(names.get(module));
            frame.arch = arch.map(text);
            frame.offset = Some(offset);
            true
        }
        Some(ModulePart::Pc(pc)) => {
            frame.pc = Some(pc);
            true
        }
        None => false,
    }
}

/// `libfoo.so:x86_64` → (`libfoo.so`, `x86_64`).
fn split_arch(module: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memrchr(b':', module) {
        Some(colon)
            if colon + 1 < module.len()
                && module[colon + 1..]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_') =>
        {
            (&module[..colon], Some(&module[colon + 1..]))
        }
        _ => (module, None),
    }
}

/// The location is the last space-separated token; the function (which may contain spaces
/// in C++ and Rust) is everything before it. A path with spaces is recognised by ` /`.
fn split_function_and_location(rest: &[u8]) -> (&[u8], Option<&[u8]>) {
    let Some(space) = memrchr(b' ', rest) else {
        return (rest, None);
    };
    let (function, location) = (&rest[..space], &rest[space + 1..]);
    if location != b"<null>" {
        if let Some(path_start) = find(function, b" /") {
            return (&rest[..path_start], Some(&rest[path_start + 1..]));
        }
    }
    (trim_end(function), Some(location))
}

/// `file:line[:col]` (or just `file`).
fn parse_source_location(location: &[u8], frame: &mut Frame, names: &mut SharedNames) {
    let (before, last) = split_trailing_number(location);
    let Some(last) = last else {
        frame.file = Some(names.get(location));
        return;
    };
    match split_trailing_number(before) {
        (file, Some(line)) => {
            frame.file = Some(names.get(file));
            frame.line = Some(line);
            frame.column = Some(last);
        }
        (file, None) => {
            frame.file = Some(names.get(file));
            frame.line = Some(last);
        }
    }
}

/// `abc:12` → (`abc`, 12); anything else → (input, None).
fn split_trailing_number(bytes: &[u8]) -> (&[u8], Option<u32>) {
    match memrchr(b':', bytes) {
        Some(colon) if colon > 0 => match parse_u32(&bytes[colon + 1..]) {
            Some(number) => (&bytes[..colon], Some(number)),
            None => (bytes, None),
        },
        _ => (bytes, None),
    }
}

/// `main thread` → 0, `thread T12` → 12.
fn parse_thread_ref(bytes: &[u8]) -> Option<(u32, &[u8])> {
    if let Some(rest) = bytes.strip_prefix(b"main thread") {
        return Some((MAIN_THREAD, rest));
    }
    let rest = bytes.strip_prefix(b"thread T")?;
    let (id, rest) = leading_u64(rest)?;
    Some((u32::try_from(id).ok()?, rest))
}

/// The access kind at the start of an access line, and whether it is `Previous`.
pub(crate) fn access_prefix(line: &[u8]) -> Option<(AccessKind, bool, &[u8])> {
    let (previous, rest) = match line.strip_prefix(b"Previous ") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (atomic, rest) = match strip_prefix_ignore_case(rest, b"atomic ") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (write, rest) = if let Some(rest) = strip_prefix_ignore_case(rest, b"write ") {
        (true, rest)
    } else {
        (false, strip_prefix_ignore_case(rest, b"read ")?)
    };
    if !(rest.starts_with(b"of size ") || rest.starts_with(b"access of ")) {
        return None;
    }
    let kind = match (atomic, write) {
        (false, false) => AccessKind::Read,
        (false, true) => AccessKind::Write,
        (true, false) => AccessKind::AtomicRead,
        (true, true) => AccessKind::AtomicWrite,
    };
    Some((kind, previous, rest))
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &bytes[prefix.len()..])
}

/// `of size 8 at 0x7b04 by thread T1 (mutexes: write M0, read M1):`
pub(crate) fn parse_access(kind: AccessKind, previous: bool, rest: &[u8]) -> Option<Access> {
    let size = rest
        .strip_prefix(b"of size ")
        .and_then(leading_u64)
        .and_then(|(size, _)| u32::try_from(size).ok());
    let at = find(rest, b" at ")?;
    let (address, after) = leading_hex(&rest[at + 4..])?;
    let by = after.strip_prefix(b" by ")?;
    let (thread, after) = parse_thread_ref(by)?;
    Some(Access {
        kind,
        previous,
        size,
        address,
        thread,
        mutexes: parse_held_mutexes(after),
        stack: Stack::default(),
    })
}

fn parse_held_mutexes(bytes: &[u8]) -> Vec<HeldMutex> {
    let Some(start) = find(bytes, b"(mutexes:") else {
        return Vec::new();
    };
    let list = &bytes[start + 9..];
    let list = &list[..memchr(b')', list).unwrap_or(list.len())];
    list.split(|b| *b == b',')
        .filter_map(|entry| {
            let entry = trim_start(entry);
            let (write, id) = if let Some(id) = entry.strip_prefix(b"write M") {
                (true, id)
            } else {
                (false, entry.strip_prefix(b"read M")?)
            };
            Some(HeldMutex {
                id: leading_u64(id)?.0,
                write,
            })
        })
        .collect()
}

/// The text after `Location is `.
pub(crate) fn parse_location(rest: &[u8]) -> Location {
    parse_known_location(rest).unwrap_or_else(|| Location::Other {
        text: text(trim_end(rest)),
    })
}

fn parse_known_location(rest: &[u8]) -> Option<Location> {
    if let Some(global) = rest.strip_prefix(b"global '") {
        return parse_global(global);
    }
    if let Some(thread) = rest.strip_prefix(b"stack of ") {
        return Some(Location::Stack {
            thread: parse_thread_ref(thread)?.0,
        });
    }
    if let Some(thread) = rest.strip_prefix(b"TLS of ") {
        return Some(Location::Tls {
            thread: parse_thread_ref(thread)?.0,
        });
    }
    if let Some(fd) = rest.strip_prefix(b"file descriptor ") {
        let (fd, after) = leading_u64(fd)?;
        let destroyed = after.starts_with(b" destroyed");
        let by = find(after, b" by ")?;
        return Some(Location::Fd {
            fd: i64::try_from(fd).ok()?,
            destroyed,
            thread: parse_thread_ref(&after[by + 4..])?.0,
            stack: Stack::default(),
        });
    }
    // `heap block of size N at 0x… allocated by thread T1:` or an external object type.
    let of_size = find(rest, b" of size ")?;
    let (size, after) = leading_u64(&rest[of_size + 9..])?;
    let (address, after) = leading_hex(after.strip_prefix(b" at ")?)?;
    let by = after.strip_prefix(b" allocated by ")?;
    Some(Location::Heap {
        object: text(&rest[..of_size]),
        size,
        address,
        thread: parse_thread_ref(by)?.0,
        stack: Stack::default(),
    })
}

/// `name' [of size N ]at 0x… (module+0xOFF)`.
fn parse_global(rest: &[u8]) -> Option<Location> {
    let quote = rfind(rest, b"' ")?;
    let name = text(&rest[..quote]);
    let mut after = &rest[quote + 2..];
    let mut size = None;
    if let Some(sized) = after.strip_prefix(b"of size ") {
        let (value, tail) = leading_u64(sized)?;
        size = Some(value);
        after = trim_start(tail);
    }
    let (address, tail) = leading_hex(after.strip_prefix(b"at ")?)?;
    let tail = trim_end(trim_start(tail));
    let (module, offset) = match tail
        .strip_prefix(b"(")
        .and_then(|t| t.strip_suffix(b")"))
        .and_then(parse_module_part)
    {
        Some(ModulePart::Module { module, offset, .. }) => (Some(text(module)), Some(offset)),
        _ => (None, None),
    };
    Some(Location::Global {
        name,
        size,
        address,
        module,
        offset,
    })
}

/// The text after `Mutex M`.
pub(crate) enum MutexLine {
    /// `M0 (0x…) created at:`
    Created { id: u64, address: Option<u64> },
    /// `M0 is already destroyed.`
    Destroyed { id: u64 },
    /// `M1 acquired here while holding mutex M0 in thread T1:`
    Acquired {
        acquired: u64,
        held: u64,
        thread: u32,
    },
    /// `M0 previously acquired by the same thread here:`
    PreviouslyAcquired,
}

pub(crate) fn parse_mutex_line(rest: &[u8]) -> Option<MutexLine> {
    let (id, after) = leading_u64(rest)?;
    if after.starts_with(b" is already destroyed") {
        return Some(MutexLine::Destroyed { id });
    }
    if after.starts_with(b" previously acquired") {
        return Some(MutexLine::PreviouslyAcquired);
    }
    if let Some(holding) = after.strip_prefix(b" acquired here while holding mutex M") {
        let (held, after) = leading_u64(holding)?;
        let thread = after
            .strip_prefix(b" in ")
            .and_then(parse_thread_ref)
            .map_or(MAIN_THREAD, |(thread, _)| thread);
        return Some(MutexLine::Acquired {
            acquired: id,
            held,
            thread,
        });
    }
    let address = after
        .strip_prefix(b" (")
        .and_then(leading_hex)
        .map(|(address, _)| address);
    Some(MutexLine::Created { id, address })
}

/// The text after `Cycle in lock order graph: `: `M0 (0x…) => M1 (0x…) => M0`.
pub(crate) fn parse_cycle(rest: &[u8]) -> Vec<CycleMutex> {
    let mut cycle: Vec<CycleMutex> = Vec::new();
    for part in memmem::find_iter(rest, b" => ")
        .chain(std::iter::once(rest.len()))
        .scan(0, |start, end| {
            let part = &rest[*start..end];
            *start = end + 4;
            Some(part)
        })
    {
        let Some((id, after)) = part.strip_prefix(b"M").and_then(leading_u64) else {
            continue;
        };
        let address = after
            .strip_prefix(b" (")
            .and_then(leading_hex)
            .map(|(address, _)| address);
        // The cycle closes on its first mutex; do not list it twice.
        if cycle.first().is_some_and(|first| first.id == id) {
            break;
        }
        cycle.push(CycleMutex { id, address });
    }
    cycle
}

/// The text after `Thread T`: `1 'name' (tid=123, running) created by main thread at:`.
/// Thread names may contain `(` and `'`, so the name ends at the last `' (tid=`.
pub(crate) fn parse_thread_line(rest: &[u8]) -> Option<Thread> {
    let (id, after) = leading_u64(rest)?;
    let tid_at = rfind(after, b" (tid=")?;
    let name = after[..tid_at]
        .strip_prefix(b" '")
        .and_then(|n| n.strip_suffix(b"'"))
        .map(text);
    let (os_tid, status) = leading_u64(&after[tid_at + 6..])?;
    let running = status.starts_with(b", running");
    let tail = &status[memchr(b')', status)? + 1..];
    let parent = tail
        .strip_prefix(b" created by ")
        .and_then(parse_thread_ref)
        .map(|(parent, _)| parent);
    let stack = trim_end(tail).ends_with(b" at:").then(Stack::default);
    Some(Thread {
        id: u32::try_from(id).ok()?,
        name,
        os_tid: Some(os_tid),
        running,
        parent,
        stack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_frame(line: &[u8], names: &mut SharedNames) -> Option<Frame> {
        let mut frame = Frame::default();
        parse_frame_into(line, names, &mut frame).then_some(frame)
    }

    #[test]
    fn frame_in_clang_form_with_build_id() {
        let frame = parse_frame(
            b"#0 lookup /tmp/x/hashtable.h:716:20 (_md.cpython-313t-x86_64-linux-gnu.so+0x1197) (BuildId: 0a1b)",
            &mut SharedNames::default(),
        )
        .unwrap();
        assert_eq!(frame.function.as_deref(), Some("lookup"));
        assert_eq!(frame.file.as_deref(), Some("/tmp/x/hashtable.h"));
        assert_eq!((frame.line, frame.column), (Some(716), Some(20)));
        assert_eq!(
            frame.module.as_deref(),
            Some("_md.cpython-313t-x86_64-linux-gnu.so")
        );
        assert_eq!(frame.offset, Some(0x1197));
        assert_eq!(frame.build_id.as_deref(), Some("0a1b"));
    }

    #[test]
    fn frame_with_nulls_arch_and_cpp_name() {
        let frame = parse_frame(
            b"#3 <null> <null> (libfoo.so:x86_64+0x2a)",
            &mut SharedNames::default(),
        )
        .unwrap();
        assert_eq!((frame.index, frame.function, frame.file), (3, None, None));
        assert_eq!(frame.arch.as_deref(), Some("x86_64"));
        let frame = parse_frame(
            b"#1 std::vector<int, std::allocator<int> >::push_back(int const&) /usr/include/c++/12/bits/stl_vector.h:1287 (a.out+0x12)",
            &mut SharedNames::default(),
        )
        .unwrap();
        assert_eq!(
            frame.function.as_deref(),
            Some("std::vector<int, std::allocator<int> >::push_back(int const&)")
        );
        assert_eq!((frame.line, frame.column), (Some(1287), None));
    }

    #[test]
    fn frame_with_a_rust_symbol() {
        let frame = parse_frame(
            b"#4 <std::thread::Builder>::spawn_unchecked_::<app::worker::{closure#0}, ()>::{closure#1} /rustc/90b35a/library/std/src/thread/mod.rs:542:30 (libapp.so+0x51d2) (BuildId: 77)",
            &mut SharedNames::default(),
        )
        .unwrap();
        assert_eq!(
            frame.function.as_deref(),
            Some("<std::thread::Builder>::spawn_unchecked_::<app::worker::{closure#0}, ()>::{closure#1}")
        );
        assert_eq!(
            frame.file.as_deref(),
            Some("/rustc/90b35a/library/std/src/thread/mod.rs")
        );
        assert_eq!(
            (frame.line, frame.column, frame.offset),
            (Some(542), Some(30), Some(0x51d2))
        );
    }

    #[test]
    fn frame_with_a_path_containing_spaces_and_a_bare_pc() {
        let frame = parse_frame(
            b"#2 worker /home/me/My Code/w.c:9 (0x7f001234)",
            &mut SharedNames::default(),
        )
        .unwrap();
        assert_eq!(frame.function.as_deref(), Some("worker"));
        assert_eq!(frame.file.as_deref(), Some("/home/me/My Code/w.c"));
        assert_eq!(frame.pc, Some(0x7f001234));
    }

    #[test]
    fn timestamps_are_stripped() {
        assert_eq!(
            strip_timestamp(b"2024-05-01T12:34:56.1234567Z     #0 f"),
            b"    #0 f"
        );
        assert_eq!(
            strip_timestamp(b"[2024-05-01 12:34:56] WARNING"),
            b"WARNING"
        );
        assert_eq!(
            strip_timestamp(b"2024-05-01 12:34:56,123 SUMMARY"),
            b"SUMMARY"
        );
        assert_eq!(strip_timestamp(b"12 warnings"), b"12 warnings");
    }

    #[test]
    fn thread_names_may_hold_quotes_and_parens() {
        let thread =
            parse_thread_line(b"2 'w (it's) 1' (tid=4242, finished) created by thread T1 at:")
                .unwrap();
        assert_eq!(thread.name.as_deref(), Some("w (it's) 1"));
        assert_eq!(
            (thread.id, thread.parent, thread.running),
            (2, Some(1), false)
        );
        assert!(thread.stack.is_some());
    }
}
