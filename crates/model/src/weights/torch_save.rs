//! Checks a `torch.save` file's pickles and storage layout before burn-store reads it.
//!
//! burn-store 0.21's reader trusts what a file declares, so a few damaged or hostile bytes could
//! make it allocate gigabytes or hand back zeros as weights. Each check here was found by
//! fuzzing (`fuzz/`, target `weights`):
//!
//! - its pickle reader allocates the length a string opcode declares (up to 4 GiB) before
//!   reading it: every argument must fit in the bytes that follow it ([`walk_pickle`]);
//! - in the legacy format (PyTorch 0.1.10 to 1.5) it sizes each storage from the element count
//!   the state dict's persistent ids declare, allocates that much, and fills the tensor with
//!   zeros when the read then fails; when a listed storage is used by no tensor it cannot place
//!   any storage and every tensor reads as zeros. The storage section must match the
//!   declarations exactly ([`check_legacy_storages`]);
//! - in the zip format it reserves an entry's declared size before reading it: a stored entry
//!   must declare the size it stores, a deflated one at most deflate's largest ratio
//!   ([`check_zip_sizes`]);
//! - it ignores a tensor's stride and reads its elements in storage order, so a tensor saved in
//!   another memory layout (`channels_last_3d`, a transposed view) would load scrambled: every
//!   tensor must be C-contiguous ([`check_strides`]; found by review, not fuzzing).

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use crate::ModelError;

use super::format_error;

/// The legacy format's first pickle: the magic number 0x1950a86a20f9469cfc6c as a LONG1.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";

/// Walks the pickles of a `torch.save` file (the zip's `data.pkl` entries, stored uncompressed as
/// PyTorch writes them; the legacy format's leading pickles and storage section; a tar's
/// entries) and refuses what burn-store would mishandle (see the module documentation).
pub(super) fn check_torch_save(path: &Path) -> Result<(), ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |at: usize, why: &str| {
        format_error(path, &format!("cannot read as a torch.save file: pickle at byte {at}: {why}"))
    };
    if bytes.starts_with(b"PK\x03\x04") {
        check_zip_sizes(&bytes)
            .map_err(|why| format_error(path, &format!("cannot read as a torch.save file: {why}")))?;
        // Every local header whose name ends in `data.pkl`, wherever the central directory points.
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(4).position(|w| w == b"PK\x03\x04").map(|i| i + at) {
            at = i + 4;
            let Some(h) = bytes.get(i..i + 30) else { break };
            let field = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as usize;
            let (method, name_len, extra_len) = (field(8), field(26), field(28));
            let Some(name) = bytes.get(i + 30..i + 30 + name_len) else { break };
            if !name.ends_with(b"data.pkl") {
                continue;
            }
            if method != 0 {
                return Err(bad(i, "the `data.pkl` entry is compressed; torch.save stores it uncompressed"));
            }
            let start = i + 30 + name_len + extra_len;
            walk_pickle(&bytes, start).map_err(|(at, why)| bad(at, &why))?;
            check_strides(&bytes, start)
                .map_err(|why| format_error(path, &format!("cannot read as a torch.save file: {why}")))?;
        }
    } else if bytes.len() >= 262 && &bytes[257..262] == b"ustar" {
        let mut at = 0;
        while let Some(h) = bytes.get(at..at + 512) {
            let size = std::str::from_utf8(&h[124..136])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok())
                .unwrap_or(0);
            if bytes.get(at + 512) == Some(&0x80) {
                walk_pickle(&bytes, at + 512).map_err(|(at, why)| bad(at, &why))?;
            }
            at = match size.div_ceil(512).checked_mul(512).and_then(|s| s.checked_add(at + 512)) {
                Some(next) if next > at => next,
                _ => break,
            };
        }
    } else if bytes.starts_with(LEGACY_MAGIC) {
        // Legacy: magic, protocol, system info, the state dict and the storage keys, one pickle
        // after the other, then the storages.
        let mut starts = [0usize; 6];
        for i in 0..5 {
            starts[i + 1] = walk_pickle(&bytes, starts[i]).map_err(|(at, why)| bad(at, &why))?;
        }
        check_legacy_storages(&bytes, starts[3], starts[4], starts[5])
            .and_then(|()| check_strides(&bytes, starts[3]))
            .map_err(|why| format_error(path, &format!("cannot read as a legacy torch.save file: {why}")))?;
    } else {
        walk_pickle(&bytes, 0).map_err(|(at, why)| bad(at, &why))?;
    }
    Ok(())
}

/// Deflate expands at most 1032:1 (a 258-byte match per 2 bits, plus block headers).
const DEFLATE_MAX_RATIO: u64 = 1032;

/// Every entry of the zip's central directory must declare an uncompressed size its stored
/// bytes can give: equal for a stored entry (as torch.save writes them), at most
/// [`DEFLATE_MAX_RATIO`] times (plus 1 KiB) for a deflated one. An archive the zip reader
/// cannot open is left to burn-store, which reports it.
fn check_zip_sizes(bytes: &[u8]) -> Result<(), String> {
    use zip8::CompressionMethod;
    let Ok(mut archive) = zip8::ZipArchive::new(std::io::Cursor::new(bytes)) else { return Ok(()) };
    for i in 0..archive.len() {
        let Ok(entry) = archive.by_index_raw(i) else { continue };
        let (method, packed, size) = (entry.compression(), entry.compressed_size(), entry.size());
        let fits = match method {
            CompressionMethod::Stored => size == packed,
            CompressionMethod::Deflated => size <= packed.saturating_mul(DEFLATE_MAX_RATIO).saturating_add(1024),
            _ => true,
        };
        if !fits || packed > bytes.len() as u64 {
            return Err(format!(
                "zip entry `{}` declares {size} bytes from {packed} stored bytes ({method}), which cannot be",
                entry.name()
            ));
        }
    }
    Ok(())
}

/// Steps through one pickle from `start` to its STOP opcode, checking that every argument lies
/// inside `bytes`; returns the position after STOP, or the failing position and why.
pub(super) fn walk_pickle(bytes: &[u8], start: usize) -> Result<usize, (usize, String)> {
    let mut at = start;
    loop {
        let op = *bytes.get(at).ok_or((at, "ends before its STOP opcode".to_string()))?;
        let arg = at + 1;
        let Some(argument) = opcode_argument(op) else {
            return Err((at, format!("unsupported opcode 0x{op:02x}")));
        };
        if op == b'.' {
            return Ok(arg);
        }
        at = arg + argument.fixed;
        if argument.len_bytes > 0 {
            let n = read_uint(bytes, arg, argument.len_bytes)?;
            let rest = bytes.len().saturating_sub(arg + argument.len_bytes);
            if n > rest {
                return Err((at, format!("an argument declares {n} bytes but only {rest} follow")));
            }
            at = arg + argument.len_bytes + n;
        }
        for _ in 0..argument.lines {
            let nl = bytes.get(at..).and_then(|b| b.iter().position(|&c| c == b'\n'));
            at += nl.ok_or((at, "ends inside a text argument".to_string()))? + 1;
        }
        if at > bytes.len() {
            return Err((arg, "ends inside an opcode argument".to_string()));
        }
    }
}

/// The argument an opcode takes: `fixed` bytes, or a `len_bytes`-byte length and that many
/// bytes, or `lines` newline-terminated text lines.
struct Argument {
    fixed: usize,
    len_bytes: usize,
    lines: usize,
}

/// The opcodes burn-store's pickle reader accepts (any other is an error there too), with the
/// argument each one takes.
fn opcode_argument(op: u8) -> Option<Argument> {
    let (fixed, len_bytes, lines) = match op {
        b'.'
        | b'('
        | b')'
        | b'R'
        | b't'
        | b'Q'
        | 0x85..=0x89
        | b'N'
        | b's'
        | b'u'
        | b'}'
        | b'd'
        | b'b'
        | 0x81
        | b']'
        | b'l'
        | b'a'
        | b'e'
        | 0x94 => (0, 0, 0),
        0x80 | b'K' | b'q' | b'h' => (1, 0, 0),
        b'M' => (2, 0, 0),
        b'J' | b'r' | b'j' => (4, 0, 0),
        b'G' => (8, 0, 0),
        b'U' | 0x8a => (0, 1, 0),
        b'X' => (0, 4, 0),
        b'I' => (0, 0, 1),
        b'c' => (0, 0, 2),
        _ => return None,
    };
    Some(Argument { fixed, len_bytes, lines })
}

/// The little-endian unsigned integer of `n` bytes at `at` (saturating at `usize::MAX`).
fn read_uint(bytes: &[u8], at: usize, n: usize) -> Result<usize, (usize, String)> {
    let b = bytes.get(at..at + n).ok_or((at, "ends inside an opcode argument".to_string()))?;
    Ok(b.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64).try_into().unwrap_or(usize::MAX))
}

/// A value on the stack of [`evaluate`]: only what the storage check needs is kept.
#[derive(Debug)]
enum Value {
    Mark,
    Str(String),
    Int(i64),
    /// `module name` of a GLOBAL.
    Global(String),
    Tuple(Vec<Rc<Value>>),
    List(Vec<Rc<Value>>),
    /// A tensor of `_rebuild_tensor(_v2)`: its size and stride.
    Tensor(Vec<i64>, Vec<i64>),
    Other,
}

/// What [`evaluate`] finds in a pickle: the storages by key, and the tensors whose stride is
/// not the C-contiguous one of their size (with their state-dict key where a dict names them).
#[derive(Debug, Default)]
struct Found {
    storages: BTreeMap<String, StorageRef>,
    strided: Vec<String>,
}

/// Whether `stride` is the row-major (C-contiguous) stride of `size`, as PyTorch's
/// `is_contiguous` judges it: dimensions of size 1 may have any stride, and a tensor without
/// elements is contiguous.
fn c_contiguous(size: &[i64], stride: &[i64]) -> bool {
    if size.len() != stride.len() {
        return false;
    }
    if size.contains(&0) {
        return true;
    }
    let mut expected = 1i64;
    for (&n, &st) in size.iter().zip(stride).rev() {
        if n != 1 && st != expected {
            return false;
        }
        expected = expected.saturating_mul(n);
    }
    true
}

/// The integers of a tuple of integers.
fn int_tuple(v: &Value) -> Option<Vec<i64>> {
    let Value::Tuple(items) = v else { return None };
    items.iter().map(|i| if let Value::Int(n) = **i { Some(n) } else { None }).collect()
}

/// A storage the state dict refers to through a persistent id
/// `('storage', type, key, location, element count, …)`.
#[derive(Debug, Clone, PartialEq)]
struct StorageRef {
    type_name: String,
    elements: u64,
}

/// Runs the pickle at `start` (already walked by [`walk_pickle`]) far enough to collect its
/// persistent ids and its tensors' sizes and strides; returns the value it leaves and what it
/// found.
fn evaluate(bytes: &[u8], start: usize) -> Result<(Rc<Value>, Found), String> {
    let mut stack: Vec<Rc<Value>> = Vec::new();
    let mut memo: BTreeMap<usize, Rc<Value>> = BTreeMap::new();
    let mut found = Found::default();
    // Strided tensors built but not yet named by a dict entry.
    let mut unnamed = 0usize;
    let other = || Rc::new(Value::Other);
    let mut at = start;
    let underflow = |at: usize| format!("pickle at byte {at}: the stack is empty");
    loop {
        let op = bytes[at];
        let arg = at + 1;
        let argument = opcode_argument(op).ok_or_else(|| format!("pickle at byte {at}: unsupported opcode"))?;
        let uint = |n: usize| read_uint(bytes, arg, n).map_err(|(at, why)| format!("pickle at byte {at}: {why}"));
        let text = |n: usize| -> Result<String, String> {
            let len = uint(n)?;
            let raw = &bytes[arg + n..arg + n + len];
            Ok(String::from_utf8_lossy(raw).into_owned())
        };
        let pop_mark = |stack: &mut Vec<Rc<Value>>| -> Result<Vec<Rc<Value>>, String> {
            let mark = stack
                .iter()
                .rposition(|v| matches!(**v, Value::Mark))
                .ok_or_else(|| format!("pickle at byte {at}: no MARK on the stack"))?;
            let items = stack.split_off(mark + 1);
            stack.pop();
            Ok(items)
        };
        let mut next = arg + argument.fixed;
        match op {
            b'.' => {
                let top = stack.pop().ok_or_else(|| underflow(at))?;
                // Strided tensors outside any dict (a bare tensor or a list of them).
                found.strided.extend((0..unnamed).map(|_| "a tensor".to_string()));
                return Ok((top, found));
            }
            0x80 => {}
            b'(' => stack.push(Rc::new(Value::Mark)),
            b')' => stack.push(Rc::new(Value::Tuple(Vec::new()))),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Rc::new(Value::Tuple(items)));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(underflow(at));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Rc::new(Value::Tuple(items)));
            }
            b'X' | b'U' => {
                let n = if op == b'X' { 4 } else { 1 };
                next = arg + n + uint(n)?;
                stack.push(Rc::new(Value::Str(text(n)?)));
            }
            b'K' | b'M' | b'J' => {
                let n = match op {
                    b'K' => 1,
                    b'M' => 2,
                    _ => 4,
                };
                let v = uint(n)? as u64;
                let v = if op == b'J' { v as u32 as i32 as i64 } else { v as i64 };
                stack.push(Rc::new(Value::Int(v)));
            }
            0x8a => {
                let n = uint(1)?;
                let raw = &bytes[arg + 1..arg + 1 + n];
                next = arg + 1 + n;
                let value = if n == 0 {
                    Value::Int(0)
                } else if n <= 8 {
                    let negative = raw[n - 1] & 0x80 != 0;
                    let mut buf = [if negative { 0xff } else { 0 }; 8];
                    buf[..n].copy_from_slice(raw);
                    Value::Int(i64::from_le_bytes(buf))
                } else {
                    Value::Other
                };
                stack.push(Rc::new(value));
            }
            b'I' => {
                let end = at + 1 + bytes[arg..].iter().position(|&c| c == b'\n').unwrap_or(0);
                let line = String::from_utf8_lossy(&bytes[arg..end]);
                next = end + 1;
                stack.push(Rc::new(line.trim().parse::<i64>().map_or(Value::Other, Value::Int)));
            }
            b'c' => {
                let first = bytes[arg..].iter().position(|&c| c == b'\n').unwrap_or(0) + arg;
                let second = bytes[first + 1..].iter().position(|&c| c == b'\n').unwrap_or(0) + first + 1;
                let module = String::from_utf8_lossy(&bytes[arg..first]);
                let name = String::from_utf8_lossy(&bytes[first + 1..second]);
                next = second + 1;
                stack.push(Rc::new(Value::Global(format!("{module} {name}"))));
            }
            b'Q' => {
                let pid = stack.pop().ok_or_else(|| underflow(at))?;
                if let Some((key, storage)) = storage_ref(&pid).map_err(|why| format!("pickle at byte {at}: {why}"))? {
                    if let Some(previous) = found.storages.get(&key)
                        && previous != &storage
                    {
                        return Err(format!(
                            "storage `{key}` is declared twice, as {} × {} and as {} × {}",
                            previous.elements, previous.type_name, storage.elements, storage.type_name
                        ));
                    }
                    found.storages.insert(key, storage);
                }
                stack.push(other());
            }
            b'N' | 0x88 | 0x89 | b'G' | b'}' => stack.push(other()),
            b']' => stack.push(Rc::new(Value::List(Vec::new()))),
            b'l' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Rc::new(Value::List(items)));
            }
            b'd' => {
                pop_mark(&mut stack)?;
                stack.push(other());
            }
            b'a' | b'e' => {
                let items =
                    if op == b'a' { vec![stack.pop().ok_or_else(|| underflow(at))?] } else { pop_mark(&mut stack)? };
                let list = stack.last_mut().ok_or_else(|| underflow(at))?;
                if let Some(Value::List(values)) = Rc::get_mut(list) {
                    values.extend(items);
                }
            }
            b'R' | 0x81 | b's' => {
                let args = stack.pop().ok_or_else(|| underflow(at))?;
                let callable = stack.pop().ok_or_else(|| underflow(at))?;
                if op == b's' {
                    // SETITEM: `callable` is the key, `args` the value.
                    name_strided(&callable, &args, &mut found, &mut unnamed);
                    stack.last().ok_or_else(|| underflow(at))?;
                } else {
                    stack.push(rebuilt_tensor(op, &callable, &args, &mut unnamed).unwrap_or_else(other));
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                for pair in items.chunks(2) {
                    if let [key, value] = pair {
                        name_strided(key, value, &mut found, &mut unnamed);
                    }
                }
                stack.last().ok_or_else(|| underflow(at))?;
            }
            b'b' => {
                stack.pop().ok_or_else(|| underflow(at))?;
                stack.last().ok_or_else(|| underflow(at))?;
            }
            b'q' | b'r' | 0x94 => {
                let index = match op {
                    b'q' => uint(1)?,
                    b'r' => uint(4)?,
                    _ => memo.len(),
                };
                let top = stack.last().ok_or_else(|| underflow(at))?;
                // A list is kept only on the stack (appends change it in place).
                let value = if matches!(**top, Value::List(_)) { other() } else { top.clone() };
                memo.insert(index, value);
            }
            b'h' | b'j' => {
                let index = uint(if op == b'h' { 1 } else { 4 })?;
                stack.push(memo.get(&index).cloned().unwrap_or_else(other));
            }
            _ => return Err(format!("pickle at byte {at}: unsupported opcode 0x{op:02x}")),
        }
        at = next;
    }
}

/// The tensor a REDUCE of `torch._utils._rebuild_tensor(_v2)` builds from `(storage, offset,
/// size, stride, …)`, counting it in `unnamed` when its stride is not C-contiguous.
fn rebuilt_tensor(op: u8, callable: &Value, args: &Value, unnamed: &mut usize) -> Option<Rc<Value>> {
    let Value::Global(g) = callable else { return None };
    if op != b'R' || !(g.ends_with(" _rebuild_tensor_v2") || g.ends_with(" _rebuild_tensor")) {
        return None;
    }
    let Value::Tuple(items) = args else { return None };
    let (size, stride) = (int_tuple(items.get(2)?)?, int_tuple(items.get(3)?)?);
    if !c_contiguous(&size, &stride) {
        *unnamed += 1;
    }
    Some(Rc::new(Value::Tensor(size, stride)))
}

/// A dict entry `key: value`: a strided tensor gets its name.
fn name_strided(key: &Value, value: &Value, found: &mut Found, unnamed: &mut usize) {
    if let (Value::Str(key), Value::Tensor(size, stride)) = (key, value)
        && !c_contiguous(size, stride)
    {
        found.strided.push(format!("`{key}` (size {size:?}, stride {stride:?})"));
        *unnamed = unnamed.saturating_sub(1);
    }
}

/// The tensors of the pickle at `start` must be stored C-contiguous: burn-store reads a
/// tensor's elements in storage order and ignores its stride, so a tensor saved in another
/// memory layout (`channels_last_3d`, a transposed view) would load with its values scrambled.
fn check_strides(bytes: &[u8], start: usize) -> Result<(), String> {
    let (_, found) = evaluate(bytes, start)?;
    match found.strided.first() {
        None => Ok(()),
        Some(first) => Err(format!(
            "{} tensor(s) not stored C-contiguous (the first: {first}), whose values would be read in the \
             wrong places; save the state dict with contiguous tensors: \
             `torch.save({{k: v.contiguous() for k, v in model.state_dict().items()}}, path)`",
            found.strided.len()
        )),
    }
}

/// The storage a persistent id names, if it is one: `('storage', type, key, location, count, …)`.
fn storage_ref(pid: &Value) -> Result<Option<(String, StorageRef)>, String> {
    let Value::Tuple(items) = pid else { return Ok(None) };
    if !matches!(items.first().map(|v| &**v), Some(Value::Str(s)) if s == "storage") {
        return Ok(None);
    }
    let type_name = match items.get(1).map(|v| &**v) {
        Some(Value::Global(g)) => g.rsplit(' ').next().unwrap_or_default().to_string(),
        Some(Value::Str(s)) => s.clone(),
        _ => return Err("a storage's persistent id has no storage type".into()),
    };
    let Some(Value::Str(key)) = items.get(2).map(|v| &**v) else {
        return Err("a storage's persistent id has no key".into());
    };
    let elements = match items.get(4).map(|v| &**v) {
        Some(Value::Int(n)) if *n >= 0 => *n as u64,
        _ => return Err(format!("storage `{key}`'s persistent id has no element count")),
    };
    Ok(Some((key.clone(), StorageRef { type_name, elements })))
}

/// Bytes per element of a legacy storage type (the types burn-store reads).
fn element_size(type_name: &str) -> Option<u64> {
    Some(match type_name {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "FloatStorage" | "IntStorage" | "ComplexHalfStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}

/// The legacy format's storage section, after the storage-keys pickle: for each key in that
/// list, the element count (u64, little-endian) and the elements. Every storage the state dict
/// (pickle at `state_dict`) declares must be listed once and stored with exactly the declared
/// count, every listed storage must be used, and the storages must fit in the file.
fn check_legacy_storages(bytes: &[u8], state_dict: usize, keys_pickle: usize, data: usize) -> Result<(), String> {
    let (_, Found { storages: declared, .. }) = evaluate(bytes, state_dict)?;
    let (keys, _) = evaluate(bytes, keys_pickle)?;
    let Value::List(keys) = &*keys else {
        return Err(format!("the storage keys (pickle at byte {keys_pickle}) are not a list"));
    };
    let mut at = data as u64;
    let mut seen = std::collections::BTreeSet::new();
    for key in keys.iter() {
        let Value::Str(key) = &**key else {
            return Err(format!("the storage keys (pickle at byte {keys_pickle}) hold a value that is not a string"));
        };
        if !seen.insert(key.as_str()) {
            return Err(format!("storage `{key}` is listed twice"));
        }
        let Some(storage) = declared.get(key) else {
            return Err(format!("storage `{key}` is listed but no tensor of the state dict uses it"));
        };
        let size = element_size(&storage.type_name)
            .ok_or_else(|| format!("storage `{key}` has the unknown type `{}`", storage.type_name))?;
        let count_at = usize::try_from(at).map_err(|_| format!("storage `{key}` starts past the end of the file"))?;
        let count = bytes
            .get(count_at..count_at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| format!("the file ends at byte {} before storage `{key}`'s element count", bytes.len()))?;
        if count != storage.elements {
            return Err(format!(
                "storage `{key}` is declared with {} elements but stored with {count} (at byte {count_at})",
                storage.elements
            ));
        }
        let end = count
            .checked_mul(size)
            .and_then(|n| n.checked_add(at + 8))
            .filter(|&end| end <= bytes.len() as u64)
            .ok_or_else(|| {
                format!(
                    "storage `{key}` declares {count} × {size}-byte elements but the file holds only {} bytes after byte {}",
                    bytes.len() as u64 - (at + 8).min(bytes.len() as u64),
                    at + 8
                )
            })?;
        at = end;
    }
    if let Some(key) = declared.keys().find(|k| !seen.contains(k.as_str())) {
        return Err(format!("the state dict uses storage `{key}`, which the file does not store"));
    }
    Ok(())
}
