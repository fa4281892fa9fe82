//! The first hour of a new user: what `make run` does and prints, the scripts it runs, and the
//! README's examples, which must stay what the samples give.
//!
//! `make demo` is `make run` once PostgreSQL is installed and the binary built: the tests run
//! it with the test binary on the test's database, and compare the README with what it
//! prints and stores. The package script runs against stand-ins for apt and dpkg.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Dmarcpipe, code, database_url, path, root};
use serde_json::Value;
use sqlx::PgPool;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `make -s TARGET` in the repository with these variables, on the test binary.
fn make(target: &str, variables: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = Command::new("make");
    command
        .args(["-s", "--no-print-directory", target, &format!("BIN={}", env!("CARGO_BIN_EXE_dmarcpipe"))])
        .args(variables.iter().map(|(name, value)| format!("{name}={value}")))
        .current_dir(root())
        .env_remove("DMARCPIPE_CONFIG")
        // No enrichment: it would ask the machine's resolver, which tests must not reach.
        .env("DMARCPIPE_NO_ENRICH", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("make runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(stdin) = stdin {
        std::io::Write::write_all(&mut input, stdin.as_bytes()).expect("written");
    }
    drop(input);
    child.wait_with_output().expect("make ends")
}

/// Writes an executable stand-in for a program.
fn stub(dir: &Path, name: &str, script: &str) {
    let file = dir.join(name);
    std::fs::write(&file, format!("#!/bin/sh\n{script}\n")).expect("written");
    let mut permissions = std::fs::metadata(&file).expect("written").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&file, permissions).expect("made executable");
}

/// `scripts/packages.sh PACKAGES` with stand-ins for dpkg-query (nothing installed), sudo,
/// sleep and apt-get (which logs its arguments, and finds the package lists locked by another
/// process the first `locked_updates` times).
fn install(packages: &[&str], locked_updates: u32, patience: &str) -> (Output, Vec<String>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("apt.log");
    stub(dir.path(), "dpkg-query", "exit 1");
    stub(dir.path(), "sudo", "exec \"$@\"");
    stub(dir.path(), "sleep", "exit 0");
    stub(
        dir.path(),
        "apt-get",
        &format!(
            "echo \"$*\" >> {log}\n\
             case \"$*\" in *update*)\n\
               if [ \"$(grep -c update {log})\" -le {locked_updates} ]; then\n\
                 echo 'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)' >&2; exit 100\n\
               fi;;\n\
             esac",
            log = log.display()
        ),
    );
    let output = Command::new("bash")
        .arg(root().join("scripts/packages.sh"))
        .args(packages)
        .env("PATH", format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default()))
        .env("APT_LOCK_SECONDS", patience)
        .output()
        .expect("the script runs");
    let calls = std::fs::read_to_string(&log).unwrap_or_default().lines().map(str::to_owned).collect();
    (output, calls)
}

#[test]
fn installing_packages_waits_for_other_apt_processes() {
    let (output, calls) = install(&["postgresql", "age"], 2, "300");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("Waiting for another apt process"), "{}", text(&output.stderr));
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert!(calls.iter().all(|call| call.starts_with("-o DPkg::Lock::Timeout=300 ")), "{calls:#?}");
    assert_eq!(calls[3], "-o DPkg::Lock::Timeout=300 install -y -qq postgresql age");

    // A lock that is not given up in time: the reason, and a failure.
    let (output, calls) = install(&["age"], 10, "0");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("Could not get lock"), "{}", text(&output.stderr));
    assert_eq!(calls.len(), 1, "{calls:#?}");

    // Every other installation goes through this script (and so waits too).
    for file in ["Makefile", "scripts/db.sh"] {
        let content = std::fs::read_to_string(root().join(file)).expect("readable");
        assert!(!content.contains("apt-get"), "{file} calls apt-get itself");
    }
}

/// The words of a command line as a shell splits them (blanks, and `'...'` quoting).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// A command shown in the README (`$ dmarcpipe ...`, continued on lines ending in `\`, without
/// its `# comment`), and the output shown under it.
#[derive(Debug)]
struct Example {
    command: String,
    output: Vec<String>,
}

fn readme_examples() -> Vec<Example> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("the README");
    let mut examples: Vec<Example> = Vec::new();
    let mut in_block = false;
    let mut continued = false;
    // Whether the last example's block is still open (its output goes on).
    let mut open = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            open = false;
            continue;
        }
        if !in_block {
            continue;
        }
        let without_comment = |text: &str| text.split("  #").next().unwrap_or_default().trim_end().to_owned();
        if let Some(command) = line.strip_prefix("$ ") {
            let command = without_comment(command);
            continued = command.ends_with('\\');
            examples
                .push(Example { command: command.trim_end_matches('\\').trim_end().to_owned(), output: Vec::new() });
            open = true;
        } else if let Some(example) = examples.last_mut().filter(|_| open) {
            if continued {
                let rest = without_comment(line);
                continued = rest.ends_with('\\');
                example.command = format!("{} {}", example.command, rest.trim_end_matches('\\').trim());
            } else if !line.trim().is_empty() {
                example.output.push(line.trim_end().to_owned());
            }
        }
        if line.is_empty() {
            continued = false;
        }
    }
    examples
}

/// Output compared with what the README shows: line by line without trailing blanks; where
/// the README shows `...`, what comes before it must begin the output (blanks aside).
fn same_as_shown(actual: &str, shown: &[String]) -> bool {
    let shown_text = shown.join("\n");
    if let Some((head, _)) = shown_text.split_once("...") {
        let squeeze = |text: &str| text.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        return squeeze(actual).starts_with(&squeeze(head));
    }
    let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
    actual == shown.iter().map(String::as_str).collect::<Vec<_>>()
}

#[sqlx::test]
async fn make_run_shows_what_the_readme_shows_and_how_to_go_on(pool: PgPool) {
    let url = database_url(&pool);
    let demo = tempfile::tempdir().expect("a temp dir");
    // Without the geolocation download: tests do not use the network.
    let output = make("demo", &[("DATABASE_URL", &url), ("DEMO", path(demo.path())), ("GEOIP_FETCH", "no")], None);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let printed = text(&output.stdout);
    let start = printed.find("\n{").expect("the import summary") + 1;
    let end = start + printed[start..].find("\n}").expect("its end") + 2;
    let summary: Value = serde_json::from_str(&printed[start..end]).expect("JSON");
    let key = demo.path().join("key.txt");
    let dmarcpipe = Dmarcpipe::on(&pool);
    let examples = readme_examples();
    let mut checked = Vec::new();

    for example in &examples {
        let command = words(&example.command);
        let Some(args) = command.strip_prefix(&["dmarcpipe".to_owned()]) else { continue };
        let args: Vec<String> =
            args.iter().map(|arg| if arg == "~/dmarc-key.txt" { path(&key).to_owned() } else { arg.clone() }).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).take_while(|arg| *arg != ">").collect();
        match args.first().copied() {
            // What `make run` imports, with `--json`: the summary it printed.
            Some("import") => {
                let makefile = std::fs::read_to_string(root().join("Makefile")).expect("the Makefile");
                let line = makefile.lines().find(|line| line.contains(" import --json ")).expect("make demo imports");
                let imported = line.split(" import ").nth(1).and_then(|rest| rest.split(" ||").next()).expect("args");
                assert_eq!(args[1..], words(imported), "the README's import is make run's");
                let mut shown: Value = serde_json::from_str(&example.output.join("\n")).expect("README JSON");
                for volatile in ["seconds", "peak_rss_bytes"] {
                    shown[volatile] = summary[volatile].clone();
                }
                assert_eq!(summary, shown, "the README's import summary");
            }
            Some("report") | Some("forensic") => {
                let output = dmarcpipe.run(&args);
                assert_eq!(code(&output), 0, "{}: {}", example.command, text(&output.stderr));
                if !example.output.is_empty() {
                    assert!(
                        same_as_shown(&text(&output.stdout), &example.output),
                        "`{}` prints\n{}\nnot what the README shows:\n{}",
                        example.command,
                        text(&output.stdout),
                        example.output.join("\n")
                    );
                }
            }
            _ => continue,
        }
        checked.push(example.command.clone());
    }
    assert!(checked.len() >= 8, "README examples checked: {checked:#?}");

    // The README's psql and age pipeline opens the same sample as `forensic show --raw`, and
    // both open the first report the README's `forensic list` shows.
    let pipeline = examples.iter().find(|example| example.command.starts_with("psql ")).expect("the psql example");
    let id = pipeline.command.split("report = ").nth(1).and_then(|rest| rest.split('"').next()).expect("an id");
    let list = examples.iter().find(|example| example.command.starts_with("dmarcpipe forensic list")).expect("a list");
    let listed = list.output.get(2).and_then(|row| row.split_whitespace().next()).expect("a row");
    let shown: Vec<&str> = examples
        .iter()
        .filter_map(|example| example.command.strip_prefix("dmarcpipe forensic show "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(!shown.is_empty() && shown.iter().all(|shown| *shown == listed) && id == listed, "{shown:?}, {id}");
    let pipeline = pipeline.command.replace("~/dmarc-key.txt", path(&key));
    let opened = Command::new("bash").args(["-c", &pipeline]).env("DATABASE_URL", &url).output().expect("runs");
    assert!(opened.status.success(), "{pipeline}: {}", text(&opened.stderr));
    let raw = dmarcpipe.run(&["forensic", "show", id, "-i", path(&key), "--raw"]);
    assert!(!raw.stdout.is_empty() && opened.stdout == raw.stdout, "{pipeline}");

    // make run ends with lines to paste: they point a shell at the same database and binary.
    let paste: Vec<&str> = printed.lines().skip_while(|line| !line.starts_with("# To go on")).collect();
    assert!(paste.iter().any(|line| line.starts_with("export DATABASE_URL=")), "{printed}");
    let script = format!("{}\nprintf '%s\\n' \"$DATABASE_URL\"; command -v dmarcpipe", paste.join("\n"));
    let shell = Command::new("bash").args(["-c", &script]).env_remove("DATABASE_URL").output().expect("runs");
    assert_eq!(text(&shell.stdout), format!("{url}\n{}\n", env!("CARGO_BIN_EXE_dmarcpipe")));
    let script = format!("{}\ndmarcpipe report --by domain --format json", paste.join("\n"));
    let report = Command::new("bash").args(["-c", &script]).env_remove("DATABASE_URL").output().expect("runs");
    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&report.stdout).expect("JSON").as_array().map(Vec::len), Some(3));

    // make psql: psql on that database.
    let inputs = make("psql", &[("DATABASE_URL", &url)], Some("SELECT 'inputs: ' || count(*) FROM dmarc_inputs;\n"));
    assert_eq!(code(&inputs), 0, "{}", text(&inputs.stderr));
    let expected = format!("inputs: {}", summary["inputs"]);
    assert!(text(&inputs.stdout).contains(&expected), "{expected}: {}", text(&inputs.stdout));
}
