//! Issue 13, classes 1-5: what an output name means (stdout, devices, FIFOs, symlinks, empty or bucket-less names),
//! object keys taken literally, a catalogue directory replaced as a set (and never mixed by concurrent runs), COPY
//! through the atomic path, and SIGTERM/SIGHUP cleaning up like SIGINT. Real files, processes, signals and s3s-fs.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BUCKET, S3Server, bundled_catalogue, files, outcome, read_parquet, starflow, starflow_std, tree, write_bundled_rows};

const FILES: [&str; 3] = ["StarFlow_summary.parquet", "StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet"];

/// [`FILES`] as a sorted listing of a directory holding them.
fn sorted_files() -> Vec<String> {
    let mut files = FILES.map(String::from).to_vec();
    files.sort();
    files
}

fn rows(path: &Path) -> usize {
    read_parquet(path).iter().map(|b| b.num_rows()).sum()
}

/// The file-level `input` key of a catalogue file (which run wrote it).
fn input_of(path: &Path) -> String {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let kv = reader.metadata().file_metadata().key_value_metadata().unwrap();
    kv.iter().find(|k| k.key == "input").and_then(|k| k.value.clone()).unwrap()
}

#[test]
fn output_targets_stdout_devices_fifos_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let sql = ["sql", "SELECT 1 AS x UNION ALL SELECT 2 ORDER BY x"];
    for stdout in ["-", "/dev/stdout"] {
        let out = starflow().args(["-o", stdout, "--format-out", "csv"]).args(sql).output().unwrap();
        assert_eq!(outcome(&out).0, Some(0), "{stdout}: {}", outcome(&out).2);
        assert_eq!(outcome(&out).1, "x\n1\n2\n", "{stdout}");
    }
    assert!(std::fs::symlink_metadata("/dev/stdout").unwrap().file_type().is_symlink(), "/dev/stdout is still a link");
    // /dev/stderr (here a pipe: its link names no file) is standard error.
    for stderr in ["/dev/stderr", "/proc/self/fd/2"] {
        let out = starflow().args(["-q", "-o", stderr, "--format-out", "csv"]).args(sql).output().unwrap();
        assert_eq!(outcome(&out), (Some(0), String::new(), "x\n1\n2\n".to_string()), "{stderr}");
    }

    // A device is streamed into, never replaced: /dev/null swallows, /dev/full reports a full disk.
    let out = starflow().args(["-o", "/dev/null", "--format-out", "csv"]).args(sql).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    let out = starflow().args(["-o", "/dev/full", "--format-out", "csv"]).args(sql).output().unwrap();
    let (code, _, err) = outcome(&out);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("/dev/full") && err.contains("No space left"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device(), "/dev/full is still a device");

    // A FIFO is streamed into: a reader gets the rows, and the FIFO stays a FIFO.
    let fifo = dir.path().join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = starflow().args(["-o", fifo.to_str().unwrap(), "--format-out", "csv"]).args(sql).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    assert_eq!(reader.join().unwrap(), "x\n1\n2\n");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // A symlink is written through: its target gets the rows, the link stays a link.
    let target = dir.path().join("real.csv");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = starflow().args(["-o", link.to_str().unwrap()]).args(sql).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "x\n1\n2\n");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

    // Refused with a usage error, touching nothing: a dangling or looping link, a directory, an empty name, a
    // bucket-less URL, a store's scheme without '//' (not a local file 's3:'), an unknown scheme.
    let dangling = dir.path().join("dangling.csv");
    std::os::unix::fs::symlink(dir.path().join("missing/x.csv"), &dangling).unwrap();
    let looped = dir.path().join("loop.csv");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let before = tree(dir.path());
    for (target, message) in [
        (dangling.to_str().unwrap(), "dangling"),
        (looped.to_str().unwrap(), "cannot be followed"),
        (dir.path().to_str().unwrap(), "directory"),
        ("", "empty output name"),
        ("s3://", "names no bucket"),
        (&format!("s3://{BUCKET}"), "names a bucket, not an object"),
        ("s3:", "did you mean s3://"),
        ("s3:/bkt/x.csv", "did you mean s3://bkt/x.csv"),
        ("ftp://host/x.csv", "unsupported storage scheme 'ftp://'"),
        ("https://example.invalid/x.csv", "read-only"),
    ] {
        let out = starflow().current_dir(dir.path()).args(["-o", target, "--format-out", "csv"]).args(sql).output().unwrap();
        let (code, stdout, err) = outcome(&out);
        assert_eq!(code, Some(2), "{target:?}: {err}");
        assert!(err.contains(message) && err.lines().count() == 1, "{target:?}: {err}");
        assert!(stdout.is_empty(), "{target:?}");
    }
    assert_eq!(tree(dir.path()), before, "nothing created, replaced or removed");
    // Refused before any statement runs: the COPY before the last statement does not happen.
    let sql = "COPY (SELECT 1 AS x) TO 'side.csv'; SELECT 2 AS y";
    let out = starflow().current_dir(dir.path()).args(["-o", "", "sql", sql]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(2), "{}", outcome(&out).2);
    assert_eq!(tree(dir.path()), before, "no side.csv");
}

#[test]
fn catalogue_directories_that_are_not_directories_are_refused() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("a-file"), "x").unwrap();
    let input = bundled_catalogue();
    for (dir, message) in [
        ("", "empty output name"),
        ("s3://", "names no bucket"),
        ("s3:", "did you mean s3://"),
        ("-", "give a directory"),
        ("a-file", "not a directory"),
        ("/dev/null", "not a directory"),
    ] {
        let out = starflow().current_dir(cwd.path()).args(["catalog", input.to_str().unwrap(), dir]).output().unwrap();
        let (code, _, err) = outcome(&out);
        assert_eq!(code, Some(2), "{dir:?}: {err}");
        assert!(err.contains(message), "{dir:?}: {err}");
    }
    assert_eq!(tree(cwd.path()), vec!["a-file".to_string()], "no 's3:' directory, nothing written");
    assert!(!Path::new("/StarFlow_summary.parquet").exists());
}

#[test]
fn object_keys_are_the_text_typed_in_outputs_and_inputs() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.parquet");
    write_bundled_rows(&small, 0, 30, &[]);

    let out = s3.starflow().args(["-q", "catalog", small.to_str().unwrap(), &format!("s3://{BUCKET}/run#3")]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    for file in FILES {
        assert_eq!(rows(&s3.object_path(&format!("run#3/{file}"))), 30, "{file} under the key run#3/");
    }
    assert!(!s3.object_path("run").exists(), "no object 'run'");

    for key in ["res#1.csv", "res?x=1.csv", "a%20b.csv", "sp ace/ünï.csv"] {
        let url = format!("s3://{BUCKET}/out/{key}");
        let out = s3.starflow().args(["-o", &url, "sql", "SELECT 7 AS n"]).output().unwrap();
        assert_eq!(outcome(&out).0, Some(0), "{key}: {}", outcome(&out).2);
        assert_eq!(std::fs::read_to_string(s3.object_path(&format!("out/{key}"))).unwrap(), "n\n7\n", "{key}");
        // Read back by the same text.
        let out = s3.starflow().args(["--format-out", "csv", "sql", &format!("SELECT n + 1 AS m FROM '{url}'")]).output().unwrap();
        assert_eq!(outcome(&out).1, "m\n8\n", "{key}: {}", outcome(&out).2);
        let out = s3.starflow().args(["--table", &format!("t={url}"), "--format-out", "csv", "sql", "SELECT n FROM t"]).output().unwrap();
        assert_eq!(outcome(&out).1, "n\n7\n", "{key}: {}", outcome(&out).2);
    }
    let objects = tree(&s3.dir.path().join(BUCKET).join("out"));
    assert!(!objects.iter().any(|o| o == "res" || o == "a b.csv"), "{objects:?}");

    let out = s3.starflow().args(["sql", &format!("COPY (SELECT 5 AS k) TO 's3://{BUCKET}/copy#2.csv'")]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    assert_eq!(std::fs::read_to_string(s3.object_path("copy#2.csv")).unwrap(), "k\n5\n");
}

/// A DR19 CSV of `rows` bundled stars whose row `bad` (0-based) has teff 'x': the query fails mid-stream (CSV types
/// are inferred from the first 1,000 rows). Stars after the first 40 are marked flag_bad, so that a catalogue does
/// not spend its time evaluating them before it fails.
fn write_bad_csv(path: &Path, rows: usize, bad: usize) {
    let out = starflow()
        .args(["-q", "-o", path.to_str().unwrap(), "sql"])
        .arg(format!("SELECT * FROM '{}' LIMIT {rows}", bundled_catalogue().display()))
        .output()
        .unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let column = |name: &str| lines[0].split(',').position(|c| c == name).unwrap();
    let (teff, flag_bad) = (column("teff"), column("flag_bad"));
    for (row, line) in lines.iter_mut().enumerate().skip(1) {
        let mut fields: Vec<&str> = line.split(',').collect();
        if row > 40 {
            fields[flag_bad] = "true";
        }
        if row == bad + 1 {
            fields[teff] = "x";
        }
        *line = fields.join(",");
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_failed_output_leaves_no_directory_and_a_replaced_file_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    write_bad_csv(&bad, 2001, 2000);
    let before = tree(dir.path());
    // The directories made for the output go again with it.
    let target = dir.path().join("new/sub/x.csv");
    let out = starflow().args(["-o", target.to_str().unwrap(), "sql", &format!("SELECT * FROM '{}'", bad.display())]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(4), "{}", outcome(&out).2);
    assert_eq!(tree(dir.path()), before, "no new/, no staging");
    // A private file stays private when it is replaced.
    let private = dir.path().join("private.csv");
    std::fs::write(&private, "old").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = starflow().args(["-q", "-o", private.to_str().unwrap(), "sql", "SELECT 1 AS x"]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    assert_eq!(std::fs::read_to_string(&private).unwrap(), "x\n1\n");
    assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_failed_catalogue_run_leaves_the_previous_set_and_strays_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (dir.path().join("good.parquet"), dir.path().join("bad.csv"));
    write_bundled_rows(&good, 0, 40, &[]);
    write_bad_csv(&bad, 3000, 2500);
    let out_dir = dir.path().join("out/re");
    let out = starflow().args(["-q", "catalog", good.to_str().unwrap(), out_dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    std::fs::write(out_dir.join("notes.txt"), "mine").unwrap();
    let before: Vec<Vec<u8>> = FILES.iter().map(|f| std::fs::read(out_dir.join(f)).unwrap()).collect();
    let entries = tree(&out_dir);

    let out = starflow().args(["-q", "--batch-size", "500", "catalog", bad.to_str().unwrap(), out_dir.to_str().unwrap()]).output().unwrap();
    let (code, _, err) = outcome(&out);
    assert_eq!(code, Some(4), "a CSV value that does not parse is a data error: {err}");
    assert!(err.contains("x"), "{err}");
    let after: Vec<Vec<u8>> = FILES.iter().map(|f| std::fs::read(out_dir.join(f)).unwrap()).collect();
    assert!(before == after, "the previous three files are untouched");
    assert_eq!(tree(&out_dir), entries, "no staging left, the stray file kept");
    assert_eq!(std::fs::read_to_string(out_dir.join("notes.txt")).unwrap(), "mine");

    // A re-run that fails while moving its files in (an output error, exit 5: the mass posterior's name is now a
    // directory) puts back the two files it had already replaced.
    let mass = out_dir.join(FILES[2]);
    std::fs::remove_file(&mass).unwrap();
    std::fs::create_dir(&mass).unwrap();
    std::fs::write(mass.join("keep"), "x").unwrap();
    let entries = tree(&out_dir);
    let out = starflow().args(["-q", "catalog", good.to_str().unwrap(), out_dir.to_str().unwrap()]).output().unwrap();
    let (code, _, err) = outcome(&out);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains(FILES[2]) && err.lines().count() == 1, "{err}");
    for (file, bytes) in FILES.iter().zip(&before).take(2) {
        assert!(std::fs::read(out_dir.join(file)).unwrap() == *bytes, "{file} is the previous one");
    }
    assert_eq!(tree(&out_dir), entries, "no staging left");
}

/// `rounds` times, two catalogue runs (of 120 and of 200 stars) at once into `target` (with `command`'s settings),
/// whose files are then in the local directory `files`: all three are of one run, and nothing else is left
/// (`entries`: what is in `files`).
fn assert_concurrent_runs_do_not_mix(
    rounds: usize,
    command: impl Fn() -> Command,
    target: &str,
    (files, entries): (&Path, fn(&Path) -> Vec<String>),
) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    write_bundled_rows(&a, 0, 120, &[]);
    write_bundled_rows(&b, 120, 200, &[]);
    for round in 0..rounds {
        let children: Vec<_> = [&a, &b]
            .iter()
            .map(|input| {
                command()
                    .args(["-q", "--threads", "1", "catalog", input.to_str().unwrap(), target])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let inputs: Vec<String> = FILES.iter().map(|f| input_of(&files.join(f))).collect();
        let counts: Vec<usize> = FILES.iter().map(|f| rows(&files.join(f))).collect();
        assert!(inputs.iter().all(|i| *i == inputs[0]), "round {round}: files of different runs: {inputs:?}");
        let expected = if inputs[0].ends_with("a.parquet") { 120 } else { 200 };
        assert_eq!(counts, vec![expected; 3], "round {round}");
        let entries = entries(files);
        assert_eq!(entries, sorted_files(), "round {round}: the three files, nothing else (no lock, no staging)");
    }
}

#[test]
fn concurrent_catalogue_runs_into_one_directory_never_mix_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    assert_concurrent_runs_do_not_mix(4, starflow_std, out_dir.to_str().unwrap(), (&out_dir, tree));
    // The same into one S3 prefix: the lock is an object created only if absent (s3s-fs leaves empty directories).
    let s3 = S3Server::start();
    let prefix = format!("s3://{BUCKET}/vac");
    assert_concurrent_runs_do_not_mix(3, || s3.starflow_std_via(&s3.endpoint), &prefix, (&s3.object_path("vac"), files));
}

#[test]
fn copy_goes_through_the_atomic_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    write_bad_csv(&bad, 2001, 2000);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for target in ["copy.parquet", "copy.csv", "parts/"] {
        let path = out_dir.join(target);
        let partitioned = if target.ends_with('/') { " STORED AS PARQUET PARTITIONED BY (flag_bad)" } else { "" };
        let sql = format!("COPY (SELECT * FROM '{}') TO '{}'{partitioned}", bad.display(), path.display());
        let out = starflow().args(["--batch-size", "512", "sql", &sql]).output().unwrap();
        let (code, _, err) = outcome(&out);
        assert_eq!(code, Some(4), "{target}: {err}");
        assert_eq!(tree(&out_dir), Vec::<String>::new(), "{target}: no file, no staging");
    }
    // A COPY that succeeds: complete, through a symlink, and into a directory with partitions.
    let real = out_dir.join("real.parquet");
    std::fs::write(&real, "old").unwrap();
    let link = out_dir.join("link.parquet");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let input = bundled_catalogue();
    let out = starflow().args(["sql", &format!("COPY (SELECT * FROM '{}') TO '{}'", input.display(), link.display())]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    assert_eq!(rows(&real), 6603);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let parts = out_dir.join("parts");
    let sql = format!("COPY (SELECT sdss_id, teff, flag_bad FROM '{}') TO '{}/' STORED AS PARQUET PARTITIONED BY (flag_bad)", input.display(), parts.display());
    let out = starflow().args(["sql", &sql]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    let written: Vec<String> = tree(&parts).into_iter().filter(|p| p.ends_with(".parquet")).collect();
    assert!(!written.is_empty() && written.iter().all(|p| p.starts_with("flag_bad=")), "{written:?}");
    let total: usize = written.iter().map(|p| rows(&parts.join(p))).sum();
    assert_eq!(total, 6603);

    // Over S3: a failed COPY leaves no object.
    let s3 = S3Server::start();
    let out = s3.starflow().args(["--batch-size", "512", "sql"])
        .arg(format!("COPY (SELECT * FROM '{}') TO 's3://{BUCKET}/out/copy.parquet'", bad.display()))
        .output().unwrap();
    assert_eq!(outcome(&out).0, Some(4), "{}", outcome(&out).2);
    assert_eq!(files(&s3.object_path("out")), Vec::<String>::new(), "no object");
}

/// Wait until `dir` holds a staged entry (a name starting with `.starflow-`), and `delay` more, then send `signal` to
/// `child`; its exit code and stderr.
fn interrupt_when_staged(child: std::process::Child, dir: &Path, delay: Duration, signal: &str) -> (Option<i32>, String) {
    interrupt_when(child, (dir, ".starflow-"), delay, signal)
}

/// [`interrupt_when_staged`] for entries of `dir` starting with `marker`.
fn interrupt_when(mut child: std::process::Child, (dir, marker): (&Path, &str), delay: Duration, signal: &str) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while tree(dir).iter().all(|e| !e.starts_with(marker)) {
        assert!(Instant::now() < deadline, "the write never started");
        assert!(child.try_wait().unwrap().is_none(), "finished before the signal");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(delay);
    Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no exit within 60 s of {signal}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn sigterm_and_sighup_clean_up_like_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.parquet");
    common::write_parquet(&input, 3_000_000);
    for signal in ["TERM", "HUP", "INT"] {
        let out_dir = dir.path().join(format!("out-{signal}"));
        std::fs::create_dir(&out_dir).unwrap();
        let target = out_dir.join("all.csv");
        let child = starflow_std()
            .args(["-q", "--batch-size", "4096", "-o", target.to_str().unwrap(), "sql"])
            .arg(format!("SELECT id, x, name, x * 3 AS y FROM '{}' ORDER BY x DESC", input.display()))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (code, err) = interrupt_when_staged(child, &out_dir, Duration::ZERO, signal);
        assert_eq!(code, Some(130), "{signal}: {err}");
        assert_eq!(err, "starflow: interrupted\n", "{signal}");
        assert_eq!(tree(&out_dir), Vec::<String>::new(), "{signal}: no file, no staging");
    }

    // A COPY: its staging area goes.
    let out_dir = dir.path().join("out-copy");
    std::fs::create_dir(&out_dir).unwrap();
    let sql = format!("COPY (SELECT id, x, name, x * 3 AS y FROM '{}' ORDER BY x DESC) TO '{}/all.csv'", input.display(), out_dir.display());
    let child = starflow_std().args(["-q", "--batch-size", "4096", "sql", &sql]).stderr(Stdio::piped()).spawn().unwrap();
    let (code, err) = interrupt_when_staged(child, &out_dir, Duration::from_millis(300), "TERM");
    assert_eq!((code, err.as_str()), (Some(130), "starflow: interrupted\n"));
    assert_eq!(tree(&out_dir), Vec::<String>::new(), "COPY: no file, no staging");

    // An upload to S3: the multipart upload is aborted (s3s-fs keeps its parts as '.upload_id-*' files until then).
    let s3 = S3Server::start();
    let child = s3
        .starflow_std_via(&s3.endpoint)
        .args(["-q", "--batch-size", "4096", "-o", &format!("s3://{BUCKET}/out/all.csv"), "sql"])
        .arg(format!("SELECT id, x, name, x * 3 AS y FROM '{}' ORDER BY x DESC", input.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, err) = interrupt_when(child, (s3.dir.path(), ".upload_id-"), Duration::ZERO, "HUP");
    assert_eq!((code, err.as_str()), (Some(130), "starflow: interrupted\n"));
    let left: Vec<String> = tree(s3.dir.path()).into_iter().filter(|e| e.starts_with(".upload_id-")).collect();
    assert_eq!(left, Vec::<String>::new(), "the upload's parts are gone");
    assert_eq!(files(&s3.object_path("out")), Vec::<String>::new(), "no object");
}

#[test]
fn a_signal_during_a_catalogue_keeps_the_previous_set_and_onnx_runtime_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.parquet");
    write_bundled_rows(&small, 0, 20, &[]);
    let out_dir = dir.path().join("out");
    let out = starflow().args(["-q", "catalog", small.to_str().unwrap(), out_dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(outcome(&out).0, Some(0), "{}", outcome(&out).2);
    let before: Vec<Vec<u8>> = FILES.iter().map(|f| std::fs::read(out_dir.join(f)).unwrap()).collect();
    for signal in ["TERM", "INT"] {
        let child = starflow_std()
            .args(["-q", "catalog", bundled_catalogue().to_str().unwrap(), out_dir.to_str().unwrap()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Let flows run a while: the signal arrives while ONNX Runtime is busy.
        let (code, err) = interrupt_when_staged(child, &out_dir, Duration::from_millis(1500), signal);
        assert_eq!(code, Some(130), "{signal}: {err}");
        assert_eq!(err, "starflow: interrupted\n", "{signal}: only our line, no ONNX Runtime log");
        let after: Vec<Vec<u8>> = FILES.iter().map(|f| std::fs::read(out_dir.join(f)).unwrap()).collect();
        assert!(before == after, "{signal}: the previous catalogue stays");
        assert_eq!(tree(&out_dir), sorted_files(), "{signal}: the three files, nothing else");
    }
}
