//! Throughput against Debian's `docker-registry` over loopback, compared
//! with skopeo: `cargo test --release -p barge-image --test
//! distribution_bench -- --ignored --nocapture`. Ignored by default (it
//! moves ~200 MB).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barge_image::distribution::{pull, push, ClientOptions, PullOptions, PushOptions};
use barge_image::store::{Digest, Store};
use oci_spec::image::MediaType;
use serde_json::json;

struct Registry {
    child: std::process::Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(dir: &Path) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reg = Registry { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return reg;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("docker-registry did not start");
}

/// A layer of `files` 1 MiB files, two thirds pseudo-random.
fn layer(seed: u64, files: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut b = tar::Builder::new(Vec::new());
    for f in 0..files {
        let mut content = Vec::with_capacity(1 << 20);
        while content.len() < (1 << 20) {
            if content.len() % (3 << 12) < (2 << 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                content.extend_from_slice(&x.to_le_bytes());
            } else {
                content.extend_from_slice(b"some text that compresses well. ");
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, format!("l{seed}/f{f}"), &content[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// `n` tars of about `each` bytes of regular files from /usr.
fn host_layers(n: usize, each: usize) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/usr")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut es: Vec<_> = rd.flatten().collect();
        es.sort_by_key(|e| e.file_name());
        for e in es {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                if let Ok(m) = e.metadata() {
                    if m.len() <= 4 << 20 {
                        files.push((e.path(), m.len() as usize));
                    }
                }
            }
        }
        if files.iter().map(|f| f.1).sum::<usize>() > n * each {
            break;
        }
    }
    let mut out = Vec::new();
    let mut it = files.into_iter();
    for _ in 0..n {
        let mut b = tar::Builder::new(Vec::new());
        let mut size = 0;
        for (p, len) in it.by_ref() {
            let Ok(data) = std::fs::read(&p) else {
                continue;
            };
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append_data(&mut h, p.strip_prefix("/").unwrap(), &data[..])
                .unwrap();
            size += len;
            if size >= each {
                break;
            }
        }
        out.push(b.into_inner().unwrap());
    }
    out
}

/// user+system CPU of this process, in ms.
fn cpu_ms() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) * 10
}

#[test]
#[ignore]
fn bench_against_skopeo() {
    let buf = vec![7u8; 256 << 20];
    let t = Instant::now();
    let _ = Digest::of_bytes(&buf);
    eprintln!("  sha256 of 256 MiB in memory: {:?}", t.elapsed());
    let t = Instant::now();
    let _ = ring::digest::digest(&ring::digest::SHA256, &buf);
    eprintln!("  ring sha256 of 256 MiB in memory: {:?}", t.elapsed());
    let t = Instant::now();
    let _ = Digest::of_bytes(&buf);
    eprintln!("  sha256 of 256 MiB in memory (again): {:?}", t.elapsed());
    let t = Instant::now();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&layer(9, 60)).unwrap();
    let gz = e.finish().unwrap();
    eprintln!("  make+gzip 60 MiB: {:?}", t.elapsed());
    let t = Instant::now();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
    eprintln!("  gunzip 60 MiB: {:?}", t.elapsed());
    drop(buf);
    let tmp = tempfile::tempdir().unwrap();
    let reg = start_registry(tmp.path());
    let host = format!("127.0.0.1:{}", reg.port);
    let src = Store::open(&tmp.path().join("src")).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut total = 0;
    // Like bench/registry.sh: uncompressed layers of host files (barge
    // build does not compress), or gzip with BENCH_GZIP=1.
    let gz_layers = std::env::var_os("BENCH_GZIP").is_some();
    let tars = host_layers(5, 40 << 20);
    for (i, t) in tars.into_iter().enumerate() {
        let t = if gz_layers && i == 0 { layer(1, 40) } else { t };
        diff_ids.push(Digest::of_bytes(&t).to_string());
        let (blob, mt) = if gz_layers {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&t).unwrap();
            (e.finish().unwrap(), MediaType::ImageLayerGzip)
        } else {
            (t, MediaType::ImageLayer)
        };
        total += blob.len();
        let info = src.write_blob_bytes(&blob).unwrap();
        descs.push(info.descriptor(mt));
    }
    let config = serde_json::to_vec(&json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":diff_ids}})).unwrap();
    let cinfo = src.write_blob_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config": cinfo.descriptor(MediaType::ImageConfig),
        "layers": descs,
    }))
    .unwrap();
    let minfo = src.write_blob_bytes(&manifest).unwrap();
    let name = format!("{host}/bench/img:v1");
    src.tag(&name, minfo.descriptor(MediaType::ImageManifest))
        .unwrap();
    eprintln!("image: {} MB compressed in 5 layers", total >> 20);
    let opts = ClientOptions::default();

    let t = Instant::now();
    push(&src, &name, None, &opts, &PushOptions::default()).unwrap();
    eprintln!("barge push: {:?}", t.elapsed());

    let dst = Store::open(&tmp.path().join("dst")).unwrap();
    let t = Instant::now();
    let r = pull(&dst, &name, &opts, &PullOptions::default()).unwrap();
    eprintln!(
        "barge pull (with unpack): {:?} ({:?})",
        t.elapsed(),
        r.layers_fetched
    );

    // Where the time goes: unpacking one layer from the store, hashing it.
    let img = dst.resolve(&name).unwrap();
    let l0 = Digest::try_from(img.manifest.layers()[0].digest()).unwrap();
    let t = Instant::now();
    let target = tmp.path().join("apply-one");
    std::fs::create_dir_all(&target).unwrap();
    barge_image::layer::apply(
        std::io::BufReader::new(dst.open_blob(&l0).unwrap()),
        &target,
        &barge_image::layer::ApplyOptions::default(),
    )
    .unwrap();
    eprintln!("  apply of one layer from the store: {:?}", t.elapsed());
    let ls: Vec<Digest> = img
        .manifest
        .layers()
        .iter()
        .map(|l| Digest::try_from(l.digest()).unwrap())
        .collect();
    let c0 = cpu_ms();
    let t = Instant::now();
    for (i, l) in ls.iter().enumerate() {
        let target = tmp.path().join(format!("apply-serial-{i}"));
        std::fs::create_dir_all(&target).unwrap();
        let t1 = Instant::now();
        let st = barge_image::layer::apply(
            dst.open_blob(l).unwrap(),
            &target,
            &barge_image::layer::ApplyOptions::default(),
        )
        .unwrap();
        eprintln!(
            "    layer {i}: {} entries in {:?}",
            st.entries,
            t1.elapsed()
        );
    }
    eprintln!(
        "  serial apply of all layers: {:?} (cpu {} ms)",
        t.elapsed(),
        cpu_ms() - c0
    );
    let c1 = cpu_ms();
    let t = Instant::now();
    std::thread::scope(|sc| {
        for (i, l) in ls.iter().enumerate() {
            let dst = &dst;
            let target = tmp.path().join(format!("apply-par-{i}"));
            sc.spawn(move || {
                std::fs::create_dir_all(&target).unwrap();
                barge_image::layer::apply(
                    dst.open_blob(l).unwrap(),
                    &target,
                    &barge_image::layer::ApplyOptions::default(),
                )
                .unwrap();
            });
        }
    });
    eprintln!(
        "  parallel apply of all layers: {:?} (cpu {} ms)",
        t.elapsed(),
        cpu_ms() - c1
    );
    let t = Instant::now();
    let data = std::fs::read(dst.blob_path(&l0)).unwrap();
    let _ = Digest::of_bytes(&data);
    eprintln!("  read+sha256 of one layer blob: {:?}", t.elapsed());
    let t = Instant::now();
    let f = std::fs::File::create(tmp.path().join("fsync-test")).unwrap();
    std::io::Write::write_all(&mut &f, &data).unwrap();
    f.sync_all().unwrap();
    eprintln!("  write+fsync of one layer blob: {:?}", t.elapsed());

    let sk = tmp.path().join("skopeo-oci");
    let t = Instant::now();
    let st = Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{name}"))
        .arg(format!("oci:{}:bench", sk.display()))
        .status()
        .unwrap();
    assert!(st.success());
    eprintln!("skopeo pull (to oci:, no unpack): {:?}", t.elapsed());

    // A second registry, so that skopeo's blob cache has nothing to mount from.
    let tmp2 = tempfile::tempdir().unwrap();
    let reg2 = start_registry(tmp2.path());
    let host2 = format!("127.0.0.1:{}", reg2.port);
    let t = Instant::now();
    let st = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:bench", sk.display()))
        .arg(format!("docker://{host2}/bench/skopeo:v1"))
        .status()
        .unwrap();
    assert!(st.success());
    eprintln!("skopeo push: {:?}", t.elapsed());

    // barge push to a fresh repository (no mount source for it recorded... the
    // source store knows bench/img, so use a store without sources).
    let t = Instant::now();
    let src2 = Store::open(&tmp.path().join("src")).unwrap();
    let _ = std::fs::remove_dir_all(tmp.path().join("src/distribution"));
    push(
        &src2,
        &name,
        Some(&format!("{host}/bench/fresh:v1")),
        &opts,
        &PushOptions::default(),
    )
    .unwrap();
    eprintln!("barge push (fresh repo): {:?}", t.elapsed());
    drop(reg2);

    // Alternating rounds, each to an empty registry.
    for round in 0..3 {
        let t3 = tempfile::tempdir().unwrap();
        let r3 = start_registry(t3.path());
        let h3 = format!("127.0.0.1:{}", r3.port);
        let t = Instant::now();
        push(
            &src2,
            &name,
            Some(&format!("{h3}/bench/img:v1")),
            &opts,
            &PushOptions::default(),
        )
        .unwrap();
        let b = t.elapsed();
        drop(r3);
        let t4 = tempfile::tempdir().unwrap();
        let r4 = start_registry(t4.path());
        let h4 = format!("127.0.0.1:{}", r4.port);
        let t = Instant::now();
        let st = Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:bench", sk.display()))
            .arg(format!("docker://{h4}/bench/img:v1"))
            .status()
            .unwrap();
        assert!(st.success());
        let k = t.elapsed();
        drop(r4);
        // And pulls into empty stores / dirs.
        let t5 = tempfile::tempdir().unwrap();
        let d5 = Store::open(t5.path()).unwrap();
        let t = Instant::now();
        pull(&d5, &name, &opts, &PullOptions::default()).unwrap();
        let bp = t.elapsed();
        let t = Instant::now();
        let st = Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{name}"))
            .arg(format!("oci:{}:bench", t5.path().join("sk").display()))
            .status()
            .unwrap();
        assert!(st.success());
        let kp = t.elapsed();
        eprintln!("round {round}: push barge {b:?} skopeo {k:?} | pull barge {bp:?} skopeo {kp:?}");
    }
    drop(reg);
}
