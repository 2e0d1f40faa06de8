//! `barge build` against a busybox base: instructions, the layer cache,
//! multi-stage builds, the context and .dockerignore, and bad input that
//! leaves no image, container, mount or temp dir behind.

mod common;

use std::path::Path;

use common::Env;

/// A build context in a temp dir: (path, contents) pairs.
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = t.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    t
}

fn build(e: &Env, dir: &Path, extra: &[&str]) -> common::Out {
    let mut a = vec!["build"];
    a.extend(extra);
    a.push(dir.to_str().unwrap());
    e.run(&a)
}

/// Nothing a build may leave behind: scratch dirs, mounts, containers.
fn assert_clean(e: &Env) {
    assert!(e.mounts().is_empty(), "mounts left: {:?}", e.mounts());
    let tmp = e.root().join("build-tmp");
    if tmp.exists() {
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "scratch left in build-tmp");
    }
    assert!(e.ids().is_empty());
}

#[test]
fn a_dockerfile_becomes_an_image_with_dockers_config() {
    let e = Env::new();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\n\
             ARG GREETING=hello\n\
             ENV APP=/app NAME=\"barge builder\"\n\
             WORKDIR $APP\n\
             COPY greet.sh ./\n\
             RUN chmod 755 greet.sh && echo \"$GREETING\" > /greeting\n\
             RUN adduser -D -u 1000 app 2>/dev/null || echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd\n\
             USER 1000\n\
             LABEL org.example.name=\"$NAME\"\n\
             EXPOSE 8080 53/udp\n\
             VOLUME /data\n\
             STOPSIGNAL SIGINT\n\
             HEALTHCHECK --interval=5s CMD test -f /greeting\n\
             ENTRYPOINT [\"/app/greet.sh\"]\n\
             CMD [\"world\"]\n",
        ),
        ("greet.sh", "#!/bin/sh\necho \"$(cat /greeting) $1 from $(pwd) as $(id -u)\"\n"),
    ]);
    let o = build(
        &e,
        ctx.path(),
        &["-t", "greeter:1", "--build-arg", "GREETING=hi"],
    );
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stderr.contains("RUN chmod 755"), "{o}");
    assert_eq!(
        e.ok(&["run", "--rm", "greeter:1"]),
        "hi world from /app as 1000\n"
    );
    assert_eq!(
        e.ok(&["run", "--rm", "greeter:1", "you"]),
        "hi you from /app as 1000\n"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&e.ok(&["image", "inspect", "-f", "{{json .Config}}", "greeter:1"]))
            .unwrap();
    assert!(
        cfg["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "APP=/app"),
        "{cfg}"
    );
    // The base has no Env: BuildKit's default PATH is added.
    assert!(
        cfg["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{cfg}"
    );
    assert!(
        cfg["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "NAME=barge builder"),
        "{cfg}"
    );
    assert_eq!(cfg["WorkingDir"], "/app");
    assert_eq!(cfg["User"], "1000");
    assert_eq!(cfg["Labels"]["org.example.name"], "barge builder");
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some(), "{cfg}");
    assert!(cfg["ExposedPorts"].get("53/udp").is_some(), "{cfg}");
    assert!(cfg["Volumes"].get("/data").is_some(), "{cfg}");
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["Entrypoint"][0], "/app/greet.sh");
    assert_eq!(cfg["Cmd"][0], "world");
    assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000i64);
    // The ARG is not kept in the image's environment.
    assert!(!cfg["Env"].to_string().contains("GREETING"), "{cfg}");
    // History: one entry per step, metadata steps empty.
    let hist = e.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "greeter:1",
    ]);
    assert!(hist.contains("RUN /bin/sh -c chmod 755 greet.sh"), "{hist}");
    assert!(hist.contains("ENV APP=/app"), "{hist}");
    assert_clean(&e);
}

#[test]
fn an_unchanged_rebuild_runs_nothing_and_a_touched_file_rebuilds_from_its_copy() {
    let e = Env::new();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nCOPY b.txt /b.txt\n",
        ),
        ("a.txt", "a"),
        ("b.txt", "b"),
    ]);
    let first = build(&e, ctx.path(), &["-t", "c:1"]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(first.stderr.matches("CACHED").count(), 0, "{first}");
    let id1 = e.ok(&["images", "-q", "c:1"]);
    let second = build(&e, ctx.path(), &["-t", "c:2"]);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(second.stderr.matches("CACHED").count(), 4, "{second}");
    assert_eq!(
        e.ok(&["images", "-q", "c:2"]),
        id1,
        "same steps, same image"
    );
    // Touch b.txt: only its COPY runs again.
    std::fs::write(ctx.path().join("b.txt"), "b2").unwrap();
    let third = build(&e, ctx.path(), &["-t", "c:3"]);
    assert_eq!(third.stderr.matches("CACHED").count(), 3, "{third}");
    // Touch a.txt: its COPY and everything after.
    std::fs::write(ctx.path().join("a.txt"), "a2").unwrap();
    let fourth = build(&e, ctx.path(), &["-t", "c:4"]);
    assert_eq!(fourth.stderr.matches("CACHED").count(), 1, "{fourth}");
    assert_eq!(
        e.ok(&["run", "--rm", "c:4", "cat", "/copy", "/b.txt"]),
        "a2b2"
    );
    // --no-cache reruns every step.
    let fifth = build(&e, ctx.path(), &["--no-cache", "-t", "c:5"]);
    assert_eq!(fifth.stderr.matches("CACHED").count(), 0, "{fifth}");
    // builder prune empties the cache.
    e.ok(&["builder", "prune", "-f"]);
    let sixth = build(&e, ctx.path(), &["-t", "c:6"]);
    assert_eq!(sixth.stderr.matches("CACHED").count(), 0, "{sixth}");
    assert_clean(&e);
}

#[test]
fn multi_stage_builds_copy_between_stages_and_honour_target() {
    let e = Env::new();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox AS builder\nRUN mkdir /out && echo built > /out/artifact && chmod 640 /out/artifact\n\
         FROM busybox AS unused\nRUN exit 1\n\
         FROM busybox\nCOPY --from=builder /out/artifact /artifact\nCMD [\"cat\", \"/artifact\"]\n",
    )]);
    let o = build(&e, ctx.path(), &["-t", "ms"]);
    assert_eq!(o.code, 0, "the unused stage is skipped: {o}");
    assert_eq!(e.ok(&["run", "--rm", "ms"]), "built\n");
    assert_eq!(
        e.ok(&["run", "--rm", "ms", "stat", "-c", "%a %u", "/artifact"]),
        "640 0\n"
    );
    let o = build(&e, ctx.path(), &["--target", "builder", "-t", "ms-builder"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        e.ok(&["run", "--rm", "ms-builder", "cat", "/out/artifact"]),
        "built\n"
    );
    let o = build(&e, ctx.path(), &["--target", "nosuch"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nosuch"), "{o}");
    assert_clean(&e);
}

#[test]
fn dockerignore_and_quiet_and_iidfile() {
    let e = Env::new();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
        (".dockerignore", "*.log\n!keep.log\nsecret/\n"),
        ("a.log", "x"),
        ("keep.log", "k"),
        ("secret/key", "s"),
        ("src/main.c", "int main;"),
    ]);
    let iid = ctx.path().join("../iid-barge-test");
    let o = build(
        &e,
        ctx.path(),
        &["-q", "-t", "ig", "--iidfile", iid.to_str().unwrap()],
    );
    assert_eq!(o.code, 0, "{o}");
    let id = o.stdout.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{o}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    std::fs::remove_file(&iid).unwrap();
    let listing = e.ok(&["run", "--rm", "ig", "find", "/ctx", "-type", "f"]);
    let mut files: Vec<&str> = listing.lines().collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            "/ctx/.dockerignore",
            "/ctx/Dockerfile",
            "/ctx/keep.log",
            "/ctx/src/main.c"
        ]
    );
}

#[test]
fn check_validates_without_building() {
    let e = Env::new();
    let good = context(&[("Dockerfile", "FROM busybox\nRUN true\n")]);
    let o = build(&e, good.path(), &["--check"]);
    assert_eq!(o.code, 0, "{o}");
    let bad = context(&[("Dockerfile", "FROM busybox\nRUN true\nFOO bar\n")]);
    let o = build(&e, bad.path(), &["--check"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains('3'), "the line number: {o}");
    assert!(o.stderr.to_lowercase().contains("foo"), "{o}");
    assert!(e.ok(&["images", "-q"]).lines().count() == 1, "only busybox");
}

#[test]
fn bad_input_fails_with_the_line_and_leaves_nothing() {
    let e = Env::new();
    let before = e.ok(&["images", "-a", "-q"]);
    for (df, want) in [
        ("FROM busybox\nBOGUS x\n", "2"),
        ("RUN true\n", "FROM"),
        ("FROM busybox\nCOPY ../outside /x\n", "outside"),
        ("FROM busybox\nCOPY missing.txt /x\n", "missing.txt"),
        ("FROM busybox AS a\nRUN true\nFROM busybox AS a\n", "a"),
        (
            "FROM busybox\nRUN echo about to fail; exit 3\n",
            "exit code: 3",
        ),
        ("FROM nosuchimage\n", "nosuchimage"),
    ] {
        let ctx = context(&[("Dockerfile", df)]);
        let o = build(&e, ctx.path(), &["-t", "bad"]);
        assert_ne!(o.code, 0, "{df}: {o}");
        assert!(o.stderr.contains(want), "{df}: wanted {want:?} in: {o}");
        assert_clean(&e);
    }
    // A failing RUN names the step and shows its output.
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo about to fail; exit 3\n",
    )]);
    let o = build(&e, ctx.path(), &["-t", "bad"]);
    assert!(o.stderr.contains("about to fail"), "{o}");
    assert!(o.stderr.contains("Dockerfile:2"), "{o}");
    assert_eq!(e.ok(&["images", "-a", "-q"]), before, "no image was made");
}

#[test]
fn context_from_a_tar_on_stdin_and_dockerfile_from_stdin() {
    let e = Env::new();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox\nCOPY hello /hello\n"),
        ("hello", "from tar"),
    ]);
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(ctx.path())
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut child = e
        .cmd(&["build", "-t", "fromtar", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        e.ok(&["run", "--rm", "fromtar", "cat", "/hello"]),
        "from tar"
    );
    // -f - : the Dockerfile from stdin, the context a directory.
    let mut child = e
        .cmd(&[
            "build",
            "-t",
            "fromstdin",
            "-f",
            "-",
            ctx.path().to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"FROM busybox\nCOPY hello /h2\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        e.ok(&["run", "--rm", "fromstdin", "cat", "/h2"]),
        "from tar"
    );
}

#[test]
fn heredocs_in_run_and_copy() {
    let e = Env::new();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nENV WHO=heredoc\n\
         RUN <<EOF\necho first > /one\necho second >> /one\nEOF\n\
         COPY <<EOT /etc/greeting\nhello $WHO\nEOT\n\
         COPY <<\"EOT\" /etc/literal\nhello $WHO\nEOT\n\
         RUN cat <<A > /two && cat <<B >> /two\nalpha\nA\nbeta\nB\n",
    )]);
    let o = build(&e, ctx.path(), &["-t", "hd"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        e.ok(&["run", "--rm", "hd", "cat", "/one"]),
        "first\nsecond\n"
    );
    assert_eq!(
        e.ok(&["run", "--rm", "hd", "cat", "/etc/greeting"]),
        "hello heredoc\n"
    );
    assert_eq!(
        e.ok(&["run", "--rm", "hd", "cat", "/etc/literal"]),
        "hello $WHO\n"
    );
    assert_eq!(e.ok(&["run", "--rm", "hd", "cat", "/two"]), "alpha\nbeta\n");
    assert_clean(&e);
}

#[test]
fn run_mounts_secrets_and_caches_stay_out_of_the_image() {
    let e = Env::new();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=secret,id=token cat /run/secrets/token > /seen\n\
             RUN --mount=type=cache,target=/var/cache/thing sh -c 'echo $(( $(cat /var/cache/thing/n 2>/dev/null || echo 0) + 1 )) > /var/cache/thing/n; cp /var/cache/thing/n /count'\n\
             RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs-seen\n\
             RUN --mount=type=bind,source=data,target=/mnt cat /mnt/file > /bound\n",
        ),
        ("data/file", "bound content"),
    ]);
    let secret = ctx.path().join("../barge-test-secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let spec = format!("id=token,src={}", secret.display());
    let o = build(&e, ctx.path(), &["-t", "mnt", "--secret", &spec]);
    std::fs::remove_file(&secret).unwrap();
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(e.ok(&["run", "--rm", "mnt", "cat", "/seen"]), "s3cret");
    assert_eq!(e.ok(&["run", "--rm", "mnt", "cat", "/count"]), "1\n");
    assert_eq!(e.ok(&["run", "--rm", "mnt", "cat", "/tmpfs-seen"]), "x\n");
    assert_eq!(
        e.ok(&["run", "--rm", "mnt", "cat", "/bound"]),
        "bound content"
    );
    // The mount points and the secret are not in the image.
    let o = e.run(&[
        "run",
        "--rm",
        "mnt",
        "ls",
        "/run/secrets",
        "/scratch",
        "/var/cache/thing",
        "/mnt",
    ]);
    assert_ne!(o.code, 0, "{o}");
    assert!(!o.stdout.contains("token"), "{o}");
    // The cache mount persists across builds (the step reruns with --no-cache).
    let o = build(
        &e,
        ctx.path(),
        &[
            "-t",
            "mnt2",
            "--no-cache",
            "--secret",
            "id=token,env=BARGE_TEST_TOKEN",
        ],
    );
    assert_ne!(o.code, 0, "no such variable: {o}");
    std::env::set_var("BARGE_TEST_TOKEN", "from-env");
    let o = build(
        &e,
        ctx.path(),
        &[
            "-t",
            "mnt2",
            "--no-cache",
            "--secret",
            "id=token,env=BARGE_TEST_TOKEN",
        ],
    );
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(e.ok(&["run", "--rm", "mnt2", "cat", "/count"]), "2\n");
    assert_eq!(e.ok(&["run", "--rm", "mnt2", "cat", "/seen"]), "from-env");
    // A required secret that was not given fails the step.
    let ctx2 = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n",
    )]);
    let o = build(&e, ctx2.path(), &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("secret nope not found"), "{o}");
    assert_clean(&e);
}

#[test]
fn cache_from_a_local_image_after_the_cache_is_gone() {
    let e = Env::new();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY a /a\nRUN echo ran > /ran\nCOPY b /b\n",
        ),
        ("a", "a"),
        ("b", "b"),
    ]);
    assert_eq!(build(&e, ctx.path(), &["-t", "cf:1"]).code, 0);
    let id1 = e.ok(&["images", "-q", "cf:1"]);
    e.ok(&["builder", "prune", "-f"]);
    let o = build(&e, ctx.path(), &["-t", "cf:2", "--cache-from", "cf:1"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stderr.matches("CACHED").count(), 3, "{o}");
    assert!(!o.stderr.contains("#4 0."), "no RUN output: {o}");
    let layers = |t: &str| e.inspect(t, "{{json .RootFS.Layers}}");
    assert_eq!(layers("cf:1"), layers("cf:2"));
    let _ = id1;
    // A changed file stops the reuse from that step on.
    std::fs::write(ctx.path().join("b"), "b2").unwrap();
    e.ok(&["builder", "prune", "-f"]);
    let o = build(&e, ctx.path(), &["-t", "cf:3", "--cache-from", "cf:1"]);
    assert_eq!(o.stderr.matches("CACHED").count(), 2, "{o}");
    assert_eq!(e.ok(&["run", "--rm", "cf:3", "cat", "/b"]), "b2");
}

#[test]
fn independent_stages_build_together_and_feed_the_last() {
    let e = Env::new();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox AS left\nRUN sleep 0.5; echo L > /l\n\
         FROM busybox AS right\nRUN sleep 0.5; echo R > /r\n\
         FROM busybox\nCOPY --from=left /l /l\nCOPY --from=right /r /r\nCMD [\"cat\", \"/l\", \"/r\"]\n",
    )]);
    let o = build(&e, ctx.path(), &["-t", "par"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(e.ok(&["run", "--rm", "par"]), "L\nR\n");
    // Both RUN steps started before either finished (they ran at once).
    let lines: Vec<&str> = o.stderr.lines().collect();
    let start = |needle: &str| -> (usize, String) {
        let i = lines.iter().position(|l| l.contains(needle)).unwrap();
        let n = lines[i].split_whitespace().next().unwrap().to_string();
        (i, n)
    };
    let done = |n: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(&format!("{n} DONE")))
            .unwrap()
    };
    let (l_start, l_n) = start("[left 2/2] RUN");
    let (r_start, r_n) = start("[right 2/2] RUN");
    assert!(
        l_start.max(r_start) < done(&l_n).min(done(&r_n)),
        "{}",
        o.stderr
    );
    assert_clean(&e);
}

#[test]
fn oversized_dockerfiles_are_refused_early() {
    let e = Env::new();
    let long_line = format!("FROM busybox\nRUN echo {}\n", "x".repeat(1 << 20));
    let ctx = context(&[("Dockerfile", long_line.as_str())]);
    let o = build(&e, ctx.path(), &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("line 2"),
        "{}",
        &o.stderr[..o.stderr.len().min(300)]
    );
    let big = format!(
        "FROM busybox\n{}",
        "# padding comment line\n".repeat(500_000)
    );
    let ctx = context(&[("Dockerfile", big.as_str())]);
    let o = build(&e, ctx.path(), &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("larger than"),
        "{}",
        &o.stderr[..o.stderr.len().min(300)]
    );
    assert_clean(&e);
}
