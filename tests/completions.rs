//! What the command line gives a shell and a reader: completion scripts that load, manual pages
//! that render, and a --version that names the commit. None of it needs a database.

use std::process::Command;

use crate::support::{bare_cmd, BIN};

#[test]
fn the_bash_completion_script_loads_and_completes_subcommands() {
    // Sourced by bash as a user's ~/.bashrc would; `complete -p` proves it registered.
    let out = Command::new("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            &format!(
                "source <('{BIN}' completions bash) && complete -p tenantctl && \
                 COMP_WORDS=(tenantctl quo) COMP_CWORD=1 COMP_LINE='tenantctl quo' COMP_POINT=13 && \
                 _tenantctl tenantctl quo tenantctl && printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ),
        ])
        .env("TENANTCTL_DATABASE_URL", "host=/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(
        stdout.contains("-F _tenantctl") && stdout.contains("tenantctl"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "quota"),
        "`quo` completes to quota:\n{stdout}"
    );
}

#[test]
fn every_shell_gets_a_script_and_a_bad_shell_is_bad_input() {
    for (shell, marker) in [
        ("bash", "complete -F _tenantctl"),
        ("zsh", "#compdef tenantctl"),
        ("fish", "complete -c tenantctl"),
        ("elvish", "edit:completion:arg-completer[tenantctl]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = bare_cmd().args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell} script lacks `{marker}`");
        assert!(
            script.contains("provision"),
            "{shell} script lacks the subcommands"
        );
    }
    let out = bare_cmd().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn completions_and_man_need_no_configuration() {
    // A config file that does not exist would stop any other command (exit 2).
    for args in [&["completions", "zsh"][..], &["man"]] {
        let out = bare_cmd()
            .args(args)
            .env("TENANTCTL_CONFIG", "/nonexistent/tenantctl.toml")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Renders a page with man-db's `man -l`, as a reader would; returns the text.
fn render(page: &std::path::Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "100")
        .env("PAGER", "cat")
        .output()
        .expect("man (Debian package man-db) must be installed: .ci/run installs it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}: {stderr}", page.display());
    assert!(stderr.is_empty(), "{}: {stderr}", page.display());
    // Off a terminal, man overstrikes bold and underlined text (`X\bX`): keep the last of each.
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text
}

#[test]
fn man_pages_render_one_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let mandir = dir.path().join("man1");
    let out = bare_cmd()
        .args(["man", "--dir"])
        .arg(&mandir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let mut pages: Vec<String> = std::fs::read_dir(&mandir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for page in [
        "tenantctl.1",
        "tenantctl-provision.1",
        "tenantctl-bill.1",
        "tenantctl-metrics.1",
        "tenantctl-quota.1",
        "tenantctl-quota-set.1",
        "tenantctl-usage-record.1",
    ] {
        assert!(
            pages.contains(&page.to_owned()),
            "{page} missing from {pages:?}"
        );
    }
    for page in &pages {
        let text = render(&mandir.join(page));
        assert!(text.contains("NAME"), "{page}:\n{text}");
    }
    let top = render(&mandir.join("tenantctl.1"));
    assert!(
        top.contains("Exit codes:") && top.contains("bad input or usage"),
        "{top}"
    );
    let provision = render(&mandir.join("tenantctl-provision.1"));
    assert!(provision.contains("--tier"), "{provision}");

    // Without --dir: the top page on stdout, the same as the file.
    let out = bare_cmd().arg("man").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        out.stdout,
        std::fs::read(mandir.join("tenantctl.1")).unwrap()
    );
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = bare_cmd().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let expected_commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        line,
        format!(
            "tenantctl {} (commit {expected_commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
}
