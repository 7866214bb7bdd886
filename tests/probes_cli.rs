//! `importprobe probes`: listing against `readelf -n`, the table and JSON
//! outputs, `--pid`, `--check python-import`, and bad input.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

// ---------------------------------------------------------------- readelf

/// One `NT_STAPSDT` note as `readelf -n --wide` prints it.
#[derive(Debug)]
struct ReadelfNote {
    provider: String,
    name: String,
    location: u64,
    base: u64,
    semaphore: u64,
    args: String,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s:?}"))
}

/// The SDT notes of `path` according to readelf, or `None` (with the
/// reason printed) if readelf is not installed.
fn readelf_notes(path: &Path) -> Option<Vec<ReadelfNote>> {
    let out = match Command::new("readelf").args(["-n", "--wide"]).arg(path).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIP: cannot run readelf: {e}");
            return None;
        }
    };
    assert!(out.status.success(), "readelf failed: {}", stderr(&out));
    let mut notes = Vec::new();
    let mut current: Option<ReadelfNote> = None;
    for line in stdout(&out).lines() {
        if let Some((_, provider)) = line.split_once("Provider: ") {
            current = Some(ReadelfNote {
                provider: provider.trim().to_owned(),
                name: String::new(),
                location: 0,
                base: 0,
                semaphore: 0,
                args: String::new(),
            });
        } else if let (Some(note), Some(name)) = (current.as_mut(), line.trim_start().strip_prefix("Name: ")) {
            note.name = name.trim().to_owned();
        } else if let (Some(note), Some(rest)) = (current.as_mut(), line.trim_start().strip_prefix("Location: ")) {
            let fields: Vec<&str> = rest.split(", ").collect();
            note.location = hex(fields[0]);
            note.base = hex(fields[1].strip_prefix("Base: ").unwrap());
            note.semaphore = hex(fields[2].strip_prefix("Semaphore: ").unwrap());
        } else if let Some(args) = line.trim_start().strip_prefix("Arguments:") {
            let mut note = current.take().expect("Arguments line without Provider");
            note.args = args.trim().to_owned();
            notes.push(note);
        }
    }
    Some(notes)
}

/// The address of `.stapsdt.base` according to `readelf -S`.
fn readelf_stapsdt_base(path: &Path) -> Option<u64> {
    let out = Command::new("readelf").args(["-S", "--wide"]).arg(path).output().unwrap();
    stdout(&out).lines().find_map(|line| {
        let (_, rest) = line.split_once(']')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        (fields.first() == Some(&".stapsdt.base")).then(|| hex(fields[2]))
    })
}

/// readelf's argument token decoded independently: (size, signed, location).
fn decode_token(token: &str) -> (Value, bool, String) {
    match token.split_once('@') {
        Some((size, location)) => {
            let signed = size.starts_with('-');
            let size: u64 = size.trim_start_matches('-').parse().unwrap();
            (Value::from(size), signed, location.to_owned())
        }
        None => (Value::Null, false, token.to_owned()),
    }
}

/// `importprobe probes --json PATH` must list exactly readelf's notes, in
/// order, with the same fields; `address` is the pc corrected by the actual
/// `.stapsdt.base` address.
fn assert_agrees_with_readelf(path: &Path) {
    let Some(expected) = readelf_notes(path) else { return };
    assert!(!expected.is_empty(), "readelf found no SDT notes in {}", path.display());
    let actual_base = readelf_stapsdt_base(path);
    let out = probes(&["--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), expected.len(), "note count differs from readelf");
    for (ours, theirs) in listed.iter().zip(&expected) {
        let ctx = format!("{}:{} in {}", theirs.provider, theirs.name, path.display());
        assert_eq!(ours["provider"], theirs.provider.as_str(), "{ctx}");
        assert_eq!(ours["name"], theirs.name.as_str(), "{ctx}");
        assert_eq!(ours["pc"], theirs.location, "{ctx}: pc is readelf's Location");
        assert_eq!(ours["base"], theirs.base, "{ctx}");
        let corrected = match actual_base {
            Some(actual) if theirs.base != 0 => theirs.location.wrapping_add(actual.wrapping_sub(theirs.base)),
            _ => theirs.location,
        };
        assert_eq!(ours["address"], corrected, "{ctx}: address corrected by .stapsdt.base");
        let semaphore = if theirs.semaphore == 0 { Value::Null } else { Value::from(theirs.semaphore) };
        assert_eq!(ours["semaphore"], semaphore, "{ctx}");
        assert_eq!(ours["args_raw"], theirs.args.as_str(), "{ctx}");
        let args = ours["args"].as_array().unwrap();
        let tokens: Vec<&str> = theirs.args.split_whitespace().collect();
        assert_eq!(args.len(), tokens.len(), "{ctx}");
        for (arg, token) in args.iter().zip(tokens) {
            let (size, signed, location) = decode_token(token);
            assert_eq!(arg["size"], size, "{ctx}: {token}");
            assert_eq!(arg["signed"], signed, "{ctx}: {token}");
            assert_eq!(arg["location"], location.as_str(), "{ctx}: {token}");
        }
    }
    eprintln!("{}: {} notes agree with readelf", path.display(), expected.len());
}

#[test]
fn agrees_with_readelf_on_importprobe() {
    assert_agrees_with_readelf(&bin());
}

#[test]
fn agrees_with_readelf_on_python311() {
    if let Some(path) = python_file(PYTHON) {
        assert_agrees_with_readelf(&path);
    }
}

#[test]
fn agrees_with_readelf_on_libpython311() {
    if let Some(path) = python_file(LIBPYTHON) {
        assert_agrees_with_readelf(&path);
    }
}

// ---------------------------------------------------------------- listing

#[test]
fn default_lists_own_probes_as_a_table() {
    let out = probes(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["PROVIDER", "NAME", "ADDRESS", "SEMAPHORE", "ARGS"], "one object: no OBJECT column");
    assert_eq!(lines.len(), 3, "{text}");
    // Note order differs between debug and release builds.
    let row = |name: &str| -> Vec<&str> {
        lines[1..].iter().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|r| r[1] == name).unwrap()
    };
    let start = row("import__find__load__start");
    assert_eq!(start[0], "python");
    assert!(start[2].starts_with("0x") && start[3].starts_with("0x"), "{text}");
    assert_eq!(start.len(), 6, "one argument: {text}");
    assert!(start[4] == "s64" && start[5].starts_with('%'), "{text}");
    let done = row("import__find__load__done");
    assert_eq!(done[0], "python");
    assert_eq!(done[4], "s64");
    assert!(done[6] == "s64" && done[5].ends_with(','), "args decoded as `s64 %rax, s64 %rXX`: {text}");
    // Columns are aligned: every cell of a column starts where its header does.
    let col = lines[0].find("SEMAPHORE").unwrap();
    assert!(lines[1..].iter().all(|l| l[col..].starts_with("0x")), "{text}");
}

#[test]
fn several_files_get_an_object_column() {
    let Some(python) = python_file(PYTHON) else { return };
    let me = bin();
    let out = probes(&[me.to_str().unwrap(), python.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("OBJECT "), "{text}");
    assert_eq!(lines.iter().filter(|l| l.starts_with(me.to_str().unwrap())).count(), 2, "{text}");
    assert!(lines.iter().any(|l| l.starts_with(PYTHON) && l.contains("import__find__load__done")));
    assert!(lines.iter().any(|l| l.starts_with(PYTHON) && l.ends_with("u64 %rax, s32 %edx")), "{text}");
}

#[test]
fn json_names_the_object_and_keeps_raw_and_corrected_addresses() {
    let me = bin();
    let out = probes(&["--json", me.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);
    for probe in &listed {
        assert_eq!(probe["object"], me.to_str().unwrap());
        for key in ["provider", "name", "address", "pc", "base", "semaphore", "semaphore_offset", "args_raw", "args"] {
            assert!(probe.get(key).is_some(), "missing {key} in {probe}");
        }
        assert!(probe["semaphore"].as_u64().unwrap() > 0);
    }
}

#[test]
fn file_without_probes_lists_nothing_and_says_so() {
    // coreutils carries no SDT notes.
    let out = probes(&["/bin/true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("has no SDT probes"), "{}", stderr(&out));
}

// ---------------------------------------------------------------- --pid

/// Kills (by handle) and reaps a child when dropped, even on a failed assert.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pid_lists_the_probes_of_a_waiting_simulator() {
    let mut child = Command::new(bin())
        .args(["run", "--workload", "flat", "--count", "3", "--wait-for-tracer=60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let child = Reaped(child);
    assert!(line.contains("waiting"), "{line}");
    let pid = child.0.id().to_string();

    let out = probes(&["--pid", &pid]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let exe = std::fs::canonicalize(bin()).unwrap();
    assert!(text.lines().next().unwrap().starts_with("OBJECT "), "--pid always names objects: {text}");
    let ours: Vec<&str> = text.lines().filter(|l| l.starts_with(exe.to_str().unwrap())).collect();
    assert_eq!(ours.len(), 2, "{text}");
    assert!(ours.iter().any(|l| l.contains("import__find__load__start")), "{text}");
    assert!(ours.iter().any(|l| l.contains("import__find__load__done")), "{text}");

    let out = probes(&["--pid", &pid, "--check", "python-import"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with(&format!("{}: python-import ok", exe.display())), "{}", stdout(&out));
}

#[test]
fn pid_finds_probes_in_libpython_and_dedupes_objects() {
    let (Some(_), Some(_)) = (python_file(PYTHON), python_file(LIBPYTHON)) else { return };
    // Debian's python3.11 has its probes in the executable; loading
    // libpython3.11.so next to it gives a process with probes in a shared
    // library too, as in CPythons built with --enable-shared.
    let script =
        format!("import ctypes, sys; ctypes.CDLL('{LIBPYTHON}'); print('ready', flush=True); sys.stdin.read()");
    let mut child =
        Command::new(PYTHON).args(["-S", "-c", &script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let child = Reaped(child);
    assert_eq!(line.trim(), "ready");
    let pid = child.0.id().to_string();

    let out = probes(&["--pid", &pid, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for object in [PYTHON, LIBPYTHON] {
        let names: Vec<&str> =
            listed.iter().filter(|p| p["object"] == object).map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 8, "{object} is listed once, with its 8 notes: {names:?}");
        assert!(names.contains(&"import__find__load__start") && names.contains(&"import__find__load__done"));
    }
    assert_eq!(listed.len(), 16, "only these two objects have probes");

    let out = probes(&["--pid", &pid, "--check", "python-import"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), format!("{PYTHON}: python-import ok\n{LIBPYTHON}: python-import ok\n"));
}

#[test]
fn pid_without_python_probes_fails_the_check() {
    // spawn() returns once exec succeeded, so /proc/PID/maps shows sleep.
    let child = Reaped(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = child.0.id().to_string();
    let out = probes(&["--pid", &pid, "--check", "python-import"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with(&format!("pid {pid}: python-import FAILED (2 problem(s))")), "{}", stdout(&out));
}

#[test]
fn pid_that_does_not_exist_is_exit_2() {
    let out = probes(&["--pid", "4294967294"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "importprobe: no process with pid 4294967294\n");
}

#[test]
fn pid_and_paths_conflict() {
    let out = probes(&["--pid", "1", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(stderr(&out).contains("cannot be used with"), "{}", stderr(&out));
}

// ---------------------------------------------------------------- --check

#[test]
fn check_passes_on_importprobe_and_shows_the_spec_differences() {
    let out = probes(&["--check", "python-import"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with(": python-import ok"), "{text}");
    assert_eq!(lines.len(), 4, "three notes: two signed pointers, one 8-byte int: {text}");
    assert!(lines[1].starts_with("  note: python:import__find__load__start argument 1 is `-8@%"), "{text}");
    assert!(lines[1].contains("(s64), CPython's is `8@%rax` (u64)"), "{text}");
    assert!(lines[3].contains("argument 2 is `-8@"), "{text}");
    assert!(lines[3].contains("CPython's is `-4@%edx` (s32)"), "{text}");
}

#[test]
fn check_passes_on_cpython_without_notes() {
    for file in [PYTHON, LIBPYTHON] {
        let Some(_) = python_file(file) else { continue };
        let out = probes(&["--check", "python-import", file]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert_eq!(stdout(&out), format!("{file}: python-import ok\n"));
    }
}

#[test]
fn check_json_carries_the_report() {
    let out = probes(&["--check", "python-import", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["check"], "python-import");
    assert_eq!(reports[0]["ok"], true);
    assert_eq!(reports[0]["problems"].as_array().unwrap().len(), 0);
    assert_eq!(reports[0]["notes"].as_array().unwrap().len(), 3);
}

#[test]
fn check_fails_on_a_file_without_probes() {
    let me = std::path::Path::new("/bin/true");
    let out = probes(&["--check", "python-import", me.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "{}: python-import FAILED (2 problem(s))\n  \
             problem: missing probe python:import__find__load__start(const char *modulename)\n  \
             problem: missing probe python:import__find__load__done(const char *modulename, int found)\n",
            me.display()
        )
    );
}

/// Runs `--check python-import` on a copy of importprobe changed by `edit`.
fn check_edited_copy(edit: impl FnOnce(&mut Vec<u8>)) -> (Option<i32>, String) {
    let mut data = std::fs::read(bin()).unwrap();
    edit(&mut data);
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "edited", &data);
    let out = probes(&["--check", "python-import", path.to_str().unwrap()]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    (out.status.code(), stdout(&out).replace(path.to_str().unwrap(), "COPY"))
}

#[test]
fn check_reports_a_renamed_probe() {
    let (code, text) =
        check_edited_copy(|d| replace_in_notes(d, b"import__find__load__done", b"import__find__load__dona"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("COPY: python-import FAILED (1 problem(s))\n"), "{text}");
    assert!(
        text.contains("  problem: missing probe python:import__find__load__done(const char *modulename, int found)\n")
    );
}

#[test]
fn check_reports_a_probe_without_semaphore() {
    let (code, text) = check_edited_copy(|d| {
        let (_, start) = note_named(d, "import__find__load__start");
        let (pc, base, _, s) = decode(d, start);
        assert_eq!(s[1], "import__find__load__start");
        rewrite(d, start, pc, base, 0, [&s[0], &s[1], &s[2]]);
    });
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(
        "  problem: python:import__find__load__start has no semaphore: CPython's import probes are semaphore-guarded"
    ));
}

#[test]
fn check_reports_two_semaphores_for_one_probe_name() {
    // Turn the done note into a second start site that keeps done's
    // semaphore: two sites, two semaphores, and no done probe left.
    let (code, text) = check_edited_copy(|d| {
        let (_, done) = note_named(d, "import__find__load__done");
        let (pc, base, sem, _) = decode(d, done);
        rewrite(d, done, pc, base, sem, ["python", "import__find__load__start", "-8@%rax"]);
    });
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("COPY: python-import FAILED (2 problem(s))\n"), "{text}");
    assert!(text.contains("  problem: python:import__find__load__start has 2 call sites with 2 different semaphores ("));
    assert!(text.contains("  problem: missing probe python:import__find__load__done"));
}

#[test]
fn check_reports_an_unsigned_or_short_int() {
    let (code, text) = check_edited_copy(|d| {
        let (_, done) = note_named(d, "import__find__load__done");
        let (pc, base, sem, s) = decode(d, done);
        rewrite(d, done, pc, base, sem, [&s[0], &s[1], "-8@%rax 2@%cx"]);
    });
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(
        "  problem: python:import__find__load__done argument 2 is `2@%cx` (u16), CPython's is a signed int `-4@%edx`"
    ));
}

// ---------------------------------------------------------------- bad input

/// Bad input: exit 2, exactly one `importprobe: ...` line on stderr
/// containing `what`, no panic, nothing on stdout.
fn assert_bad_input(path: &Path, what: &str) {
    let out = probes(&[path.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("importprobe: ") && err.contains(what), "expected {what:?} in {err:?}");
    assert!(!err.contains("panicked"));
    assert_eq!(stdout(&out), "");
}

#[test]
fn not_elf_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "script.py", b"print('hello')\n");
    assert_bad_input(&path, "is not an ELF file");
}

#[test]
fn truncated_elf_is_exit_2() {
    let data = std::fs::read(bin()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for len in [20, 64, 4096, data.len() / 2, data.len() - 1] {
        let path = write_file(dir.path(), &format!("cut{len}"), &data[..len]);
        assert_bad_input(&path, "malformed ELF");
    }
}

fn corrupted_copy(edit: impl FnOnce(&mut Vec<u8>)) -> (tempfile::TempDir, std::path::PathBuf) {
    let mut data = std::fs::read(bin()).unwrap();
    edit(&mut data);
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "corrupt", &data);
    (dir, path)
}

#[test]
fn note_running_past_its_section_is_exit_2() {
    let (_dir, path) = corrupted_copy(|d| {
        let first = notes(d)[0];
        d[first.header + 4..first.header + 8].copy_from_slice(&0xffff_ff00u32.to_le_bytes());
    });
    assert_bad_input(&path, "malformed SDT note #0");
}

#[test]
fn note_with_bad_argument_size_is_exit_2() {
    let mut index = None;
    let (_dir, path) = corrupted_copy(|d| {
        let (i, done) = note_named(d, "import__find__load__done");
        index = Some(i);
        let (pc, base, sem, s) = decode(d, done);
        rewrite(d, done, pc, base, sem, [&s[0], &s[1], "-8@%rax -3@%ecx"]);
    });
    let index = index.unwrap();
    assert_bad_input(&path, &format!("malformed SDT note #{index}: bad argument \"-3@%ecx\""));
}

#[test]
fn note_with_unterminated_strings_is_exit_2() {
    let (_dir, path) = corrupted_copy(|d| {
        let first = notes(d)[0];
        for b in &mut d[first.desc + 24..first.desc + first.desc_len] {
            if *b == 0 {
                *b = b'x';
            }
        }
    });
    assert_bad_input(&path, "malformed SDT note #0: provider, name and arguments are not all NUL-terminated");
}

#[test]
fn note_too_short_for_its_addresses_is_exit_2() {
    let (_dir, path) = corrupted_copy(|d| {
        let first = notes(d)[0];
        d[first.header + 4..first.header + 8].copy_from_slice(&20u32.to_le_bytes());
    });
    // Shrinking the descriptor desynchronises the following notes too, but
    // the first error wins and is reported alone.
    assert_bad_input(&path, "malformed SDT note #0: descriptor is 20 bytes, shorter than its three addresses");
}

#[test]
fn directory_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_input(dir.path(), "is a directory, not an ELF file");
}

#[test]
fn nonexistent_path_is_exit_2() {
    assert_bad_input(
        Path::new("/nonexistent/importprobe-test"),
        "cannot read /nonexistent/importprobe-test: No such file",
    );
}

#[test]
fn unreadable_file_is_exit_2_unless_we_may_read_it_anyway() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = write_file(dir.path(), "mode000", &std::fs::read(bin()).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&path).is_err() {
        eprintln!("mode 000 is unreadable for this user: expecting exit 2");
        assert_bad_input(&path, "Permission denied");
        return;
    }
    // root (CAP_DAC_OVERRIDE) reads mode 000 files: the listing must work...
    eprintln!("this user can read a mode 000 file (root): expecting a normal listing");
    let out = probes(&[path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 3);
    // ...and a user without that capability must get the error: run as
    // nobody if we can switch users.
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin())
        .arg("probes")
        .arg(&path)
        .output();
    match as_nobody {
        Ok(out) if out.status.code() != Some(127) && !stderr(&out).starts_with("setpriv:") => {
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            assert_eq!(
                stderr(&out),
                format!("importprobe: cannot read {}: Permission denied (os error 13)\n", path.display())
            );
        }
        Ok(out) => eprintln!("SKIP the non-root half: setpriv failed: {}", stderr(&out)),
        Err(e) => eprintln!("SKIP the non-root half: cannot run setpriv: {e}"),
    }
}

#[test]
fn good_files_are_still_listed_when_one_is_bad() {
    let me = bin();
    let out = probes(&[me.to_str().unwrap(), "/nonexistent/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
}
