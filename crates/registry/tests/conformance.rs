//! OCI distribution-spec v1.1 conformance, modelled on the official Go suite
//! (opencontainers/distribution-spec, conformance/: 01_pull, 02_push,
//! 03_discovery, 04_management) and extended with range requests, manifest
//! size limits, name/tag validation and concurrent uploads.
//!
//! Every test starts its own `barge_registry` server on 127.0.0.1:0 over a
//! fresh tempdir, so the tests run in parallel. Assertion messages name the
//! request, the expectation (with the spec's wording where it is a MUST) and
//! the full response.
//!
//! Where the spec only says SHOULD or MAY but the registry is built to
//! support the feature (single-POST upload, cross-repository mount, the tags
//! `Link` header, referrers filtering, rejecting manifests with unknown
//! blobs, the 4 MiB limit), the test requires it and says so in its message.

#[path = "conformance/harness.rs"]
mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use harness::*;
use reqwest::{Method, Url};
use serde_json::{json, Value};

// ===========================================================================
// 01 Pull
// ===========================================================================

#[test]
fn pull_01_base_api_route() {
    let reg = Registry::start();
    reg.get("GET /v2/", "/v2/").status(
        200,
        "\"If the response is 200 OK, then the registry implements this specification.\"",
    );
}

#[test]
fn pull_02_blobs() {
    let reg = Registry::start();
    let repo = "conformance/pull-blobs";
    let img = image(1);
    reg.push_image(repo, &img, Some("latest"));
    let layer = &img.layers[0];

    // HEAD nonexistent blob
    let r = reg.head(
        "HEAD nonexistent blob",
        &format!("/v2/{repo}/blobs/{DUMMY_DIGEST}"),
    );
    r.status(404, "\"If the blob or manifest is not found in the repository, the response code MUST be 404 Not Found.\"");
    r.body_empty("a HEAD response has no body");

    // HEAD existing blob
    for blob in [&img.config, layer] {
        let r = reg.head(
            "HEAD existing blob",
            &format!("/v2/{repo}/blobs/{}", blob.digest),
        );
        r.status(
            200,
            "\"A HEAD request to an existing blob or manifest URL MUST return 200 OK.\"",
        );
        r.header_eq("Docker-Content-Digest", &blob.digest, "\"A successful response MUST contain the digest of the uploaded blob or manifest in the header Docker-Content-Digest.\"");
        r.header_eq("Content-Length", &blob.data.len().to_string(), "\"A successful response MUST contain the size in bytes of the uploaded blob or manifest in the header Content-Length.\"");
        r.body_empty("a HEAD response has no body");
    }

    // GET nonexistent blob
    reg.get("GET nonexistent blob", &format!("/v2/{repo}/blobs/{DUMMY_DIGEST}"))
        .error(&[404], &["BLOB_UNKNOWN"], "\"If the blob is not found in the repository, the response code MUST be 404 Not Found.\" (code-1 BLOB_UNKNOWN)");

    // GET existing blob
    for blob in [&img.config, layer, &img.layers[1]] {
        let r = reg.get(
            "GET existing blob",
            &format!("/v2/{repo}/blobs/{}", blob.digest),
        );
        r.status(200, "\"A GET request to an existing blob URL MUST provide the expected blob, with a response code that MUST be 200 OK.\"");
        r.body_eq(&blob.data, "the blob as pushed");
        if let Some(cl) = r.header("Content-Length") {
            if cl != blob.data.len().to_string() {
                r.fail("Content-Length of a blob GET must be the blob's size");
            }
        }
        r.header_eq("Docker-Content-Digest", &blob.digest, "\"A successful response MUST contain the digest of the uploaded blob in the header Docker-Content-Digest.\"");
    }

    // A blob pushed to another repository is not in this one.
    let other = Blob::layer(99, 100);
    reg.push_blob("conformance/elsewhere", &other);
    reg.get(
        "GET blob that only another repository has",
        &format!("/v2/{repo}/blobs/{}", other.digest),
    )
    .error(
        &[404],
        &["BLOB_UNKNOWN"],
        "\"If the blob is not found in the repository, the response code MUST be 404 Not Found.\"",
    );

    // Nonexistent repository.
    reg.get(
        "GET blob in nonexistent repository",
        &format!("/v2/conformance/no-such-repo/blobs/{}", layer.digest),
    )
    .error(
        &[404],
        &["BLOB_UNKNOWN", "NAME_UNKNOWN"],
        "\"An attempt to pull a nonexistent repository MUST return response code 404 Not Found.\"",
    );
}

#[test]
fn pull_03_manifests() {
    let reg = Registry::start();
    let repo = "conformance/pull-manifests";
    let img = image(2);
    let tag = "v1.0";
    reg.push_image(repo, &img, Some(tag));
    let m = &img.manifest;

    // HEAD nonexistent manifest
    let r = reg.head(
        "HEAD nonexistent manifest (tag)",
        &format!("/v2/{repo}/manifests/does-not-exist"),
    );
    r.status(404, "\"If the blob or manifest is not found in the repository, the response code MUST be 404 Not Found.\"");
    reg.head("HEAD nonexistent manifest (digest)", &format!("/v2/{repo}/manifests/{DUMMY_DIGEST}"))
        .status(404, "\"If the blob or manifest is not found in the repository, the response code MUST be 404 Not Found.\"");

    // HEAD by digest and by tag
    for reference in [m.digest.as_str(), tag] {
        let r = reg.send(
            format!("HEAD manifest by {reference}"),
            reg.req(Method::HEAD, &format!("/v2/{repo}/manifests/{reference}"))
                .header("Accept", MT_MANIFEST),
        );
        r.status(
            200,
            "\"A HEAD request to an existing blob or manifest URL MUST return 200 OK.\"",
        );
        r.header_eq("Docker-Content-Digest", &m.digest, "\"A successful response MUST contain the digest of the uploaded blob or manifest in the header Docker-Content-Digest.\"");
        r.header_eq("Content-Length", &m.bytes.len().to_string(), "\"A successful response MUST contain the size in bytes of the uploaded blob or manifest in the header Content-Length.\"");
        if r.media_type() != MT_MANIFEST {
            r.fail(
                "Content-Type SHOULD match what the client pushed as the manifest's Content-Type",
            );
        }
        r.body_empty("a HEAD response has no body");
    }

    // GET nonexistent manifest
    reg.get("GET nonexistent manifest (tag)", &format!("/v2/{repo}/manifests/does-not-exist"))
        .error(&[404], &["MANIFEST_UNKNOWN"], "\"If the manifest is not found in the repository, the response code MUST be 404 Not Found.\" (code-7 MANIFEST_UNKNOWN)");
    reg.get("GET nonexistent manifest (digest)", &format!("/v2/{repo}/manifests/{DUMMY_DIGEST}"))
        .error(&[404], &["MANIFEST_UNKNOWN"], "\"If the manifest is not found in the repository, the response code MUST be 404 Not Found.\"");

    // GET by digest and by tag
    for reference in [m.digest.as_str(), tag] {
        let r = reg.send(
            format!("GET manifest by {reference}"),
            reg.req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
                .header("Accept", MT_MANIFEST),
        );
        r.status(200, "\"A GET request to an existing manifest URL MUST provide the expected manifest, with a response code that MUST be 200 OK.\"");
        r.body_eq(&m.bytes, "\"The registry MUST store the manifest in the exact byte representation provided by the client.\"");
        r.header_eq("Docker-Content-Digest", &m.digest, "\"A successful response MUST contain the digest of the uploaded blob in the header Docker-Content-Digest.\"");
        if r.media_type() != MT_MANIFEST {
            r.fail("\"The Content-Type header SHOULD match what the client pushed as the manifest's Content-Type.\"");
        }
    }

    // Nonexistent repository
    reg.get(
        "GET manifest in nonexistent repository",
        "/v2/conformance/no-such-repo/manifests/latest",
    )
    .error(
        &[404],
        &["MANIFEST_UNKNOWN", "NAME_UNKNOWN"],
        "\"An attempt to pull a nonexistent repository MUST return response code 404 Not Found.\"",
    );
}

#[test]
fn pull_04_error_codes() {
    // Go suite: "400 response body should contain OCI-conforming JSON message".
    let reg = Registry::start();
    let repo = "conformance/pull-errors";
    let invalid = Manifest::from_bytes(
        b"{\"schemaVersion\": \"totally\", \"invalid\"".to_vec(),
        MT_MANIFEST,
    );
    let r = reg.put_manifest(repo, "sha256:totallywrong", &invalid);
    r.status_in(
        &[400, 404],
        "Go suite: PUT manifests/sha256:totallywrong with an invalid manifest is 400 or 404",
    );
    if r.status == 400 {
        r.error_codes();
    }
    // A malformed manifest under a valid tag.
    reg.put_manifest(repo, "valid-tag", &invalid).error(
        &[400],
        &["MANIFEST_INVALID"],
        "malformed manifest JSON (code-6 MANIFEST_INVALID)",
    );
    reg.get(
        "GET the tag of the rejected manifest",
        &format!("/v2/{repo}/manifests/valid-tag"),
    )
    .status(404, "a rejected manifest is not stored");
}

#[test]
fn pull_05_blob_range_requests() {
    // "A registry SHOULD support the Range request header in accordance with RFC 9110 (section 14)."
    let reg = Registry::start();
    let repo = "conformance/pull-range";
    let blob = Blob::layer(5, 100_000);
    reg.push_blob(repo, &blob);
    let path = format!("/v2/{repo}/blobs/{}", blob.digest);
    let total = blob.data.len();

    let cases: [(String, usize, usize); 4] = [
        ("bytes=0-0".into(), 0, 0),
        ("bytes=10-4095".into(), 10, 4095),
        (format!("bytes={}-", total - 1000), total - 1000, total - 1),
        ("bytes=-500".into(), total - 500, total - 1),
    ];
    for (range, a, b) in cases {
        let r = reg.send(
            format!("GET blob with Range: {range}"),
            reg.req(Method::GET, &path).header("Range", range.clone()),
        );
        r.status(
            206,
            "RFC 9110 §14: a satisfiable single byte range is answered with 206 Partial Content",
        );
        r.header_eq(
            "Content-Range",
            &format!("bytes {a}-{b}/{total}"),
            "RFC 9110 §14.4: Content-Range of a 206",
        );
        r.body_eq(&blob.data[a..=b], "the requested byte range");
        if let Some(cl) = r.header("Content-Length") {
            if cl != (b - a + 1).to_string() {
                r.fail("Content-Length of a 206 must be the length of the range");
            }
        }
    }

    // An unsatisfiable range: 416 with "Content-Range: bytes */<len>", or the range ignored (200).
    let r = reg.send(
        "GET blob with an unsatisfiable Range",
        reg.req(Method::GET, &path)
            .header("Range", format!("bytes={}-{}", total + 10, total + 20)),
    );
    r.status_in(
        &[416, 200],
        "RFC 9110 §15.5.17: an unsatisfiable range is 416 (or the Range is ignored)",
    );
    if r.status == 416 {
        r.header_eq(
            "Content-Range",
            &format!("bytes */{total}"),
            "RFC 9110 §15.5.17: a 416 SHOULD carry Content-Range: bytes */<complete-length>",
        );
    } else {
        r.body_eq(&blob.data, "a 200 carries the whole blob");
    }
}

// ===========================================================================
// 02 Push
// ===========================================================================

#[test]
fn push_01_blob_upload_streamed() {
    let reg = Registry::start();
    let repo = "conformance/push-streamed";
    let blob = Blob::layer(11, 200_000);

    let r = reg.send(
        "POST /blobs/uploads/",
        reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")),
    );
    r.status(
        202,
        "\"Upon success, the response MUST have a code of 202 Accepted\"",
    );
    let loc = r.location(&reg);

    let r = reg.send(
        "PATCH <location> with the whole blob streamed (chunked transfer, no Content-Range)",
        reg.req_url(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .body(streamed(blob.data.clone())),
    );
    r.status(
        202,
        "Go suite: PATCH request with blob in body should yield 202 response",
    );
    r.header_eq(
        "Range",
        &format!("0-{}", blob.data.len() - 1),
        "\"Range: 0-<end-of-range>\" on a chunk's 202",
    );
    let loc = r.location(&reg);

    let r = reg.send(
        "PUT <location>?digest= (no body) closing a streamed upload",
        reg.req_url(Method::PUT, with_query(loc, &[("digest", &blob.digest)]))
            .header("Content-Type", "application/octet-stream")
            .body(Vec::<u8>::new()),
    );
    r.status(
        201,
        "\"The response to a successful closing of the session MUST be 201 Created\"",
    );
    let blob_loc = r.location(&reg);
    reg.send(
        "GET the blob's Location",
        reg.req_url(Method::GET, blob_loc),
    )
    .status(200, "\"With <blob-location> being a pullable blob URL.\"")
    .body_eq(&blob.data, "the streamed blob");
}

#[test]
fn push_02_blob_upload_monolithic() {
    let reg = Registry::start();
    let repo = "conformance/push-monolithic";
    let config = Blob::config(12);
    let layer = Blob::layer(12, 1_500_000);

    reg.get(
        "GET nonexistent blob",
        &format!("/v2/{repo}/blobs/{}", config.digest),
    )
    .status(
        404,
        "\"If the blob is not found in the repository, the response code MUST be 404 Not Found.\"",
    );

    // Single POST with ?digest=
    let r = reg.send(
        "POST /blobs/uploads/?digest= with the blob (single POST)",
        reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .query(&[("digest", &config.digest)])
            .header("Content-Type", "application/octet-stream")
            .body(config.data.clone()),
    );
    r.status(201, "\"Successful completion of the request MUST return a 201 Created\" (single POST is a MAY; Barge supports it)");
    let blob_loc = r.location(&reg);
    reg.send(
        "GET the single-POST blob's Location",
        reg.req_url(Method::GET, blob_loc),
    )
    .status(200, "\"Here, <blob-location> is a pullable blob URL.\"")
    .body_eq(&config.data, "the blob pushed with a single POST");

    // POST then PUT
    let r1 = reg.send(
        "POST /blobs/uploads/",
        reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")),
    );
    r1.status(202, "\"Upon success, the response MUST have a code of 202 Accepted, and MUST include the following header: Location\"");
    let loc1 = r1.location(&reg);
    let r2 = reg.send(
        "POST /blobs/uploads/ (second session)",
        reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")),
    );
    r2.status(202, "a second session");
    let loc2 = r2.location(&reg);
    if loc1 == loc2 {
        r2.fail("\"The <blob-push-location> MUST contain a UUID representing a unique session ID\": two sessions got the same location");
    }
    let r = reg.send(
        "PUT <location>?digest= with the whole layer",
        reg.req_url(Method::PUT, with_query(loc1, &[("digest", &layer.digest)]))
            .header("Content-Type", "application/octet-stream")
            .body(layer.data.clone()),
    );
    r.status(
        201,
        "\"Upon successful completion of the request, the response MUST have code 201 Created\"",
    );
    if let Some(d) = r.header("Docker-Content-Digest") {
        if d != layer.digest {
            r.fail("Docker-Content-Digest differs from the pushed digest");
        }
    }
    let blob_loc = r.location(&reg);
    reg.send(
        "GET the PUT blob's Location",
        reg.req_url(Method::GET, blob_loc),
    )
    .status(200, "\"With <blob-location> being a pullable blob URL.\"")
    .body_eq(&layer.data, "the monolithic layer");
    reg.get(
        "GET the layer by digest",
        &format!("/v2/{repo}/blobs/{}", layer.digest),
    )
    .status(200, "GET request to existing layer should yield 200")
    .body_eq(&layer.data, "the monolithic layer");

    // The second session is independent and still usable.
    let r = reg.send(
        "PUT <second location>?digest=",
        reg.req_url(Method::PUT, with_query(loc2, &[("digest", &config.digest)]))
            .header("Content-Type", "application/octet-stream")
            .body(config.data.clone()),
    );
    r.status(201, "closing the second session (its blob already exists)");
}

#[test]
fn push_03_blob_upload_chunked() {
    let reg = Registry::start();
    let repo = "conformance/push-chunked";

    let r = reg.send(
        "POST /blobs/uploads/ (Content-Length: 0)",
        reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .header("Content-Length", "0")
            .body(Vec::<u8>::new()),
    );
    r.status(
        202,
        "\"Upon success, the response MUST have a code of 202 Accepted\"",
    );
    let loc = r.location(&reg);
    let mut chunk1_len = 64 * 1024 + 7;
    if let Some(min) = r.header("OCI-Chunk-Min-Length") {
        let min: usize = min
            .parse()
            .unwrap_or_else(|_| r.fail("OCI-Chunk-Min-Length is not an integer"));
        chunk1_len = chunk1_len.max(min);
    }
    let data = rand_bytes(13, chunk1_len * 2 - 2);
    let digest = sha256(&data);
    let (c1, c2) = data.split_at(chunk1_len);
    let range1 = format!("0-{}", c1.len() - 1);
    let range2 = format!("{}-{}", c1.len(), data.len() - 1);

    // Out-of-order chunk first → 416
    let r = reg.send(
        format!("PATCH second chunk first (Content-Range: {range2})"),
        reg.req_url(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range2.clone())
            .body(c2.to_vec()),
    );
    r.status(416, "\"If a chunk is uploaded out of order, the registry MUST respond with a 416 Requested Range Not Satisfiable code.\"");

    // In order: chunk 1
    let first = reg.start_upload(repo);
    let r = reg.send(
        format!("PATCH first chunk (Content-Range: {range1})"),
        reg.req_url(Method::PATCH, first.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range1.clone())
            .body(c1.to_vec()),
    );
    r.status(
        202,
        "\"The response for each successful chunk upload MUST be 202 Accepted\"",
    );
    r.header_eq(
        "Range",
        &range1,
        "\"and MUST have the following headers: Location, Range: 0-<end-of-range>\"",
    );
    r.location(&reg);

    // Retrying chunk 1 on the POST's location → 416
    let r = reg.send(
        "PATCH first chunk again on the POST's location",
        reg.req_url(Method::PATCH, first.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range1.clone())
            .body(c1.to_vec()),
    );
    r.status(416, "\"Chunks MUST be uploaded in order, with the first byte of a chunk being the last chunk's <end-of-range> plus one. If a chunk is uploaded out of order, the registry MUST respond with a 416\"");

    // Status of the session
    let r = reg.send(
        "GET <upload location> (status)",
        reg.req_url(Method::GET, first.clone()),
    );
    r.status(204, "\"The response to an active upload <blob-push-location> MUST be a 204 No Content response code\"");
    r.header_eq(
        "Range",
        &range1,
        "\"and MUST have the following headers: Location, Range: 0-<end-of-range>\"",
    );
    let loc = r.location(&reg);

    // Chunk 2
    let r = reg.send(
        format!("PATCH second chunk (Content-Range: {range2})"),
        reg.req_url(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range2.clone())
            .body(c2.to_vec()),
    );
    r.status(
        202,
        "\"The response for each successful chunk upload MUST be 202 Accepted\"",
    );
    r.header_eq(
        "Range",
        &format!("0-{}", data.len() - 1),
        "\"Range: 0-<end-of-range>\"",
    );
    let loc = r.location(&reg);

    // Close
    let r = reg.send(
        "PUT <location>?digest= (Content-Length: 0) closing a chunked upload",
        reg.req_url(Method::PUT, with_query(loc, &[("digest", &digest)]))
            .header("Content-Type", "application/octet-stream")
            .body(Vec::<u8>::new()),
    );
    r.status(
        201,
        "\"The response to a successful closing of the session MUST be 201 Created\"",
    );
    let blob_loc = r.location(&reg);
    reg.send(
        "GET the chunked blob's Location",
        reg.req_url(Method::GET, blob_loc),
    )
    .status(200, "\"Here, <blob-location> is a pullable blob URL.\"")
    .body_eq(&data, "chunk 1 followed by chunk 2");

    // Final chunk in the closing PUT (older Go suite).
    let data = rand_bytes(14, 50_000);
    let digest = sha256(&data);
    let (c1, c2) = data.split_at(20_000);
    let loc = reg.start_upload(repo);
    let r = reg.send(
        "PATCH first chunk (0-19999)",
        reg.req_url(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "0-19999")
            .body(c1.to_vec()),
    );
    r.status(
        202,
        "\"The response for each successful chunk upload MUST be 202 Accepted\"",
    );
    let loc = r.location(&reg);
    // Final chunk out of order in the PUT → 416
    let r = reg.send(
        "PUT <location>?digest= with an out-of-order final chunk (Content-Range: 20001-49999)",
        reg.req_url(Method::PUT, with_query(loc.clone(), &[("digest", &digest)]))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "20001-49999")
            .body(data[20_001..].to_vec()),
    );
    r.status(416, "\"If the final chunk is uploaded out of order, the registry MUST respond with a 416 Requested Range Not Satisfiable code.\"");
    let r = reg.send(
        "PUT <location>?digest= with the final chunk (Content-Range: 20000-49999)",
        reg.req_url(Method::PUT, with_query(loc, &[("digest", &digest)]))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "20000-49999")
            .body(c2.to_vec()),
    );
    r.status(201, "\"The final chunk MAY be uploaded using a PATCH request or it MAY be uploaded in the closing PUT request.\" → 201 Created");
    r.location(&reg);
    reg.get(
        "GET the blob whose last chunk came with the PUT",
        &format!("/v2/{repo}/blobs/{digest}"),
    )
    .status(200, "the blob exists")
    .body_eq(&data, "both chunks");
}

#[test]
fn push_04_blob_upload_cancel_and_unknown_session() {
    let reg = Registry::start();
    let repo = "conformance/push-cancel";
    let loc = reg.start_upload(repo);
    let r = reg.send(
        "PATCH a chunk",
        reg.req_url(Method::PATCH, loc.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "0-9")
            .body(vec![7u8; 10]),
    );
    r.status(202, "a chunk is 202 Accepted");
    let r = reg.send(
        "DELETE <upload location>",
        reg.req_url(Method::DELETE, loc.clone()),
    );
    r.status(
        204,
        "\"If successful, the response SHOULD be a 204 No Content response code.\" (end-14: 204)",
    );
    reg.send(
        "GET a cancelled upload",
        reg.req_url(Method::GET, loc.clone()),
    )
    .error(
        &[404],
        &["BLOB_UPLOAD_UNKNOWN"],
        "end-13: GET <blob-push-location> fails with 404 (code-3 BLOB_UPLOAD_UNKNOWN)",
    );
    reg.send(
        "PATCH a cancelled upload",
        reg.req_url(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "10-19")
            .body(vec![7u8; 10]),
    )
    .error(
        &[404],
        &["BLOB_UPLOAD_UNKNOWN"],
        "end-5: PATCH on an unknown session fails with 404",
    );
    let bogus = format!("/v2/{repo}/blobs/uploads/00000000-0000-0000-0000-000000000000");
    reg.get("GET an upload session that never existed", &bogus)
        .error(
            &[404],
            &["BLOB_UPLOAD_UNKNOWN"],
            "end-13: 404 for an unknown upload (code-3 BLOB_UPLOAD_UNKNOWN)",
        );
    let d = sha256(b"x");
    reg.send(
        "PUT ?digest= on an upload session that never existed",
        reg.req_url(Method::PUT, with_query(reg.url(&bogus), &[("digest", &d)]))
            .body(b"x".to_vec()),
    )
    .error(
        &[404],
        &["BLOB_UPLOAD_UNKNOWN"],
        "end-6: 404 for an unknown upload (code-3 BLOB_UPLOAD_UNKNOWN)",
    );
}

#[test]
fn push_05_blob_digest_mismatch_and_invalid_digest() {
    let reg = Registry::start();
    let repo = "conformance/push-digest";
    let blob = Blob::layer(15, 4096);
    let wrong = sha256(b"something else entirely");

    let loc = reg.start_upload(repo);
    reg.send(
        "PUT <location>?digest=<wrong digest>",
        reg.req_url(Method::PUT, with_query(loc, &[("digest", &wrong)]))
            .header("Content-Type", "application/octet-stream")
            .body(blob.data.clone()),
    )
    .error(&[400], &["DIGEST_INVALID"], "end-6 failure 400; code-4 DIGEST_INVALID \"provided digest did not match uploaded content\"");
    for d in [&wrong, &blob.digest] {
        reg.get(
            "GET a blob after a rejected upload",
            &format!("/v2/{repo}/blobs/{d}"),
        )
        .status(404, "a blob whose digest did not verify is not stored");
    }

    reg.send(
        "POST /blobs/uploads/?digest=<wrong digest> with a body",
        reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .query(&[("digest", &wrong)])
            .header("Content-Type", "application/octet-stream")
            .body(blob.data.clone()),
    )
    .error(
        &[400],
        &["DIGEST_INVALID"],
        "end-4b failure 400; \"Likewise, the <digest> MUST match the blob's digest.\"",
    );

    // Chunked then a PUT with the wrong digest.
    let loc = reg.start_upload(repo);
    let r = reg.send(
        "PATCH the blob",
        reg.req_url(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("0-{}", blob.data.len() - 1))
            .body(blob.data.clone()),
    );
    r.status(202, "a chunk is 202");
    let loc = r.location(&reg);
    reg.send(
        "PUT <location>?digest=<wrong digest> closing a chunked upload",
        reg.req_url(Method::PUT, with_query(loc, &[("digest", &wrong)])).body(Vec::<u8>::new()),
    )
    .error(&[400], &["DIGEST_INVALID"], "\"The closing PUT request MUST include the <digest> of the whole blob\"; a mismatch is DIGEST_INVALID");

    // Syntactically invalid digests / unsupported algorithm.
    for bad in [
        "sha256:nothex",
        "sha256:abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "notadigest",
    ] {
        let loc = reg.start_upload(repo);
        reg.send(
            format!("PUT <location>?digest={bad}"),
            reg.req_url(Method::PUT, with_query(loc, &[("digest", bad)]))
                .header("Content-Type", "application/octet-stream")
                .body(blob.data.clone()),
        )
        .error(&[400], &["DIGEST_INVALID", "UNSUPPORTED"], "\"if the client provided digest is invalid or uses an unsupported algorithm, the registry SHOULD respond with a response code 400 Bad Request\"");
    }
}

#[test]
fn push_05b_digest_algorithm_sha512() {
    // end-4c: POST /v2/<name>/blobs/uploads/?digest-algorithm=<algorithm> → 201/202, failure 404/400.
    // "When pushing a blob with a digest algorithm other than sha256, the post request SHOULD include the
    //  digest-algorithm parameter". Supporting sha512 is optional: a 400 is a conforming refusal.
    use sha2::{Digest as _, Sha512};
    let reg = Registry::start();
    let repo = "conformance/push-sha512";
    let data = rand_bytes(55, 10_000);
    let digest = format!("sha512:{}", hex::encode(Sha512::digest(&data)));
    let r = reg.send(
        "POST /blobs/uploads/?digest-algorithm=sha512",
        reg.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .query(&[("digest-algorithm", "sha512")])
            .header("Content-Length", "0")
            .body(Vec::<u8>::new()),
    );
    r.status_in(
        &[202, 400],
        "end-4c: 202 (session) or 400 (unsupported algorithm)",
    );
    if r.status == 400 {
        r.error_codes();
        eprintln!("note: the registry does not support sha512 blobs (allowed)");
        return;
    }
    let loc = r.location(&reg);
    let r = reg.send(
        "PUT <location>?digest=sha512:...",
        reg.req_url(Method::PUT, with_query(loc, &[("digest", &digest)]))
            .header("Content-Type", "application/octet-stream")
            .body(data.clone()),
    );
    r.status_in(
        &[201, 400],
        "201, or 400: \"if the client provided digest ... uses an unsupported algorithm, the registry SHOULD respond with a response code 400 Bad Request\"",
    );
    if r.status == 400 {
        r.error(
            &[400],
            &["DIGEST_INVALID", "UNSUPPORTED"],
            "an unsupported digest algorithm",
        );
        eprintln!("note: ?digest-algorithm=sha512 opened a session (202) whose sha512 close was refused (400); end-4c lets the POST itself fail with 400");
        return;
    }
    let r = reg.get("GET the sha512 blob", &format!("/v2/{repo}/blobs/{digest}"));
    r.status(200, "the sha512 blob is pullable")
        .body_eq(&data, "the sha512 blob");
    r.header_eq(
        "Docker-Content-Digest",
        &digest,
        "\"If present, the value of this header MUST be a digest matching that of the response body.\"",
    );
}

#[test]
fn push_06_cross_repository_mount() {
    let reg = Registry::start();
    let from = "conformance/mount-source";
    let to = "conformance/mount-target";
    let blob = Blob::layer(16, 33_333);
    reg.push_blob(from, &blob);

    // Without from, of an unknown digest → a session.
    let r = reg.send(
        "POST /blobs/uploads/?mount=<unknown digest> (no from)",
        reg.req(Method::POST, &format!("/v2/{to}/blobs/uploads/"))
            .query(&[("mount", DUMMY_DIGEST)]),
    );
    r.status(
        202,
        "Go suite: cross-mounting of a blob without the from argument should yield a session id",
    );
    r.location(&reg);

    // With from → 201
    let r = reg.send(
        "POST /blobs/uploads/?mount=<digest>&from=<other repo>",
        reg.req(Method::POST, &format!("/v2/{to}/blobs/uploads/"))
            .query(&[("mount", blob.digest.as_str()), ("from", from)]),
    );
    r.status(
        201,
        "\"The response to a successful mount MUST be 201 Created\" (Barge supports mounting)",
    );
    let loc = r.location(&reg);
    if loc.path() != format!("/v2/{to}/blobs/{}", blob.digest) {
        r.fail(&format!(
            "Go suite: the mount's Location is /v2/{to}/blobs/<digest>, got {}",
            loc.path()
        ));
    }
    if let Some(d) = r.header("Docker-Content-Digest") {
        if d != blob.digest {
            r.fail("Docker-Content-Digest of the mount differs from the mounted digest");
        }
    }
    reg.send(
        "GET the mounted blob's Location",
        reg.req_url(Method::GET, loc),
    )
    .status(
        200,
        "\"The Location header will contain the registry URL to access the accepted layer file.\"",
    )
    .body_eq(&blob.data, "the mounted blob");
    reg.head(
        "HEAD the mounted blob in the target",
        &format!("/v2/{to}/blobs/{}", blob.digest),
    )
    .status(200, "the blob is now in the target repository");

    // Mount of a blob that exists nowhere, with from → falls back to a session.
    let missing = Blob::layer(17, 1000);
    let r = reg.send(
        "POST /blobs/uploads/?mount=<unknown digest>&from=<other repo>",
        reg.req(Method::POST, &format!("/v2/{to}/blobs/uploads/"))
            .query(&[("mount", missing.digest.as_str()), ("from", from)]),
    );
    r.status(202, "\"if a registry ... is unable to mount the requested blob, it SHOULD return a 202. This indicates that the upload session has begun\"");
    let loc = r.location(&reg);
    if !loc.path().starts_with(&format!("/v2/{to}/blobs/uploads/")) {
        r.fail(&format!(
            "Go suite: the fallback's Location starts with /v2/{to}/blobs/uploads/, got {}",
            loc.path()
        ));
    }
    let r = reg.send(
        "PUT the fallback session's location ?digest=",
        reg.req_url(Method::PUT, with_query(loc, &[("digest", &missing.digest)]))
            .header("Content-Type", "application/octet-stream")
            .body(missing.data.clone()),
    );
    r.status(
        201,
        "\"the client MAY proceed with the upload\": the session works",
    );
    reg.get(
        "GET the blob uploaded through the fallback session",
        &format!("/v2/{to}/blobs/{}", missing.digest),
    )
    .status(200, "the upload completed")
    .body_eq(&missing.data, "the uploaded blob");
}

#[test]
fn push_07_manifests() {
    let reg = Registry::start();
    let repo = "conformance/push-manifests";
    let img = image(18);
    reg.push_blob(repo, &img.config);
    for l in &img.layers {
        reg.push_blob(repo, l);
    }
    let m = &img.manifest;

    reg.get("GET nonexistent manifest", &format!("/v2/{repo}/manifests/test0"))
        .status(404, "\"If the manifest is not found in the repository, the response code MUST be 404 Not Found.\"");

    // By tag, four times.
    for i in 0..4 {
        let r = reg.put_manifest(repo, &format!("test{i}"), m);
        r.status(
            201,
            "\"Upon a successful upload, the registry MUST return response code 201 Created\"",
        );
        r.header_eq("Docker-Content-Digest", &m.digest, "\"The Docker-Content-Digest header returns the digest of the uploaded blob, and MUST be equal to the client provided digest.\"");
        let loc = r.location(&reg);
        reg.send(
            "GET the manifest's Location",
            reg.req_url(Method::GET, loc).header("Accept", MT_MANIFEST),
        )
        .status(200, "\"The <location> is a pullable manifest URL.\"")
        .body_eq(&m.bytes, "the pushed manifest");
    }
    reg.send(
        "GET manifest by digest",
        reg.req(Method::GET, &format!("/v2/{repo}/manifests/{}", m.digest))
            .header("Accept", MT_MANIFEST),
    )
    .status(
        200,
        "GET request to manifest URL (digest) should yield 200 response",
    )
    .body_eq(&m.bytes, "the pushed manifest");

    // An image manifest with no layers.
    let empty_layers = Manifest::from_value(
        &image_manifest_value(img.config.descriptor(), &[]),
        MT_MANIFEST,
    );
    let r = reg.put_manifest(repo, "emptylayer", &empty_layers);
    r.status(201, "\"The uploaded manifest MUST reference any blobs that make up the object. However, the list of blobs MAY be empty.\"");
    r.location(&reg);

    // By digest, with unusual but valid formatting kept byte for byte.
    let pretty = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": img.config.descriptor(),
        "layers": [img.layers[1].descriptor()],
        "annotations": {"org.example.note": "pretty printed,   spaced"}
    }))
    .expect("json");
    let mut bytes = b"  ".to_vec();
    bytes.extend_from_slice(&pretty);
    bytes.extend_from_slice(b"\n\n");
    let pretty = Manifest::from_bytes(bytes, MT_MANIFEST);
    let r = reg.put_manifest(repo, &pretty.digest.clone(), &pretty);
    r.status(201, "PUT manifest by digest is 201 Created");
    r.header_eq(
        "Docker-Content-Digest",
        &pretty.digest,
        "\"MUST be equal to the client provided digest\"",
    );
    r.location(&reg);
    reg.get("GET the manifest pushed by digest", &format!("/v2/{repo}/manifests/{}", pretty.digest))
        .status(200, "the manifest pushed by digest is pullable")
        .body_eq(&pretty.bytes, "\"The registry MUST store the manifest in the exact byte representation provided by the client.\"");

    // By digest, with a digest that does not match.
    let other = Manifest::from_value(
        &image_manifest_value(img.config.descriptor(), &[img.layers[0].descriptor()]),
        MT_MANIFEST,
    );
    reg.put_manifest(repo, &pretty.digest.clone(), &other)
        .error(
            &[400],
            &["DIGEST_INVALID"],
            "PUT manifests/<digest> whose body hashes elsewhere (code-4 DIGEST_INVALID)",
        );
    reg.get(
        "GET by digest after the rejected mismatch",
        &format!("/v2/{repo}/manifests/{}", pretty.digest),
    )
    .status(200, "the earlier manifest is untouched")
    .body_eq(&pretty.bytes, "the earlier manifest");

    // An image index over the pushed manifests.
    let index = Manifest::from_value(
        &json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
            {"mediaType": MT_MANIFEST, "digest": m.digest, "size": m.bytes.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": MT_MANIFEST, "digest": pretty.digest, "size": pretty.bytes.len(), "platform": {"architecture": "arm64", "os": "linux"}}
        ]}),
        MT_INDEX,
    );
    let r = reg.put_manifest(repo, "multiarch", &index);
    r.status(201, "PUT of an image index is 201 Created");
    r.header_eq(
        "Docker-Content-Digest",
        &index.digest,
        "\"MUST be equal to the client provided digest\"",
    );
    let r = reg.send(
        "GET the index by tag",
        reg.req(Method::GET, &format!("/v2/{repo}/manifests/multiarch"))
            .header("Accept", MT_INDEX),
    );
    r.status(200, "the index is pullable")
        .body_eq(&index.bytes, "the index");
    if r.media_type() != MT_INDEX {
        r.fail("\"The Content-Type header SHOULD match what the client pushed as the manifest's Content-Type.\"");
    }

    // Re-tagging moves the tag.
    let r = reg.put_manifest(repo, "test0", &pretty);
    r.status(201, "re-pushing a tag is 201");
    reg.get("GET the moved tag", &format!("/v2/{repo}/manifests/test0"))
        .status(200, "the tag exists")
        .body_eq(
            &pretty.bytes,
            "a tag points at the last manifest pushed under it",
        );
}

#[test]
fn push_08_manifest_with_unknown_blobs() {
    // "A registry MAY reject a manifest uploaded to the manifest endpoint with descriptors in other fields that
    //  reference a manifest or blob that does not exist in the registry. When a manifest is rejected for this
    //  reason, it MUST result in one or more MANIFEST_BLOB_UNKNOWN errors." (Barge rejects.)
    let reg = Registry::start();
    let repo = "conformance/push-missing-blobs";
    let img = image(19);
    let why =
        "a manifest referencing blobs the repository lacks is rejected with MANIFEST_BLOB_UNKNOWN";
    reg.put_manifest(repo, "nothing-pushed", &img.manifest)
        .error(&[400, 404], &["MANIFEST_BLOB_UNKNOWN"], why);

    reg.push_blob(repo, &img.config);
    reg.push_blob(repo, &img.layers[0]);
    reg.put_manifest(repo, "one-layer-missing", &img.manifest)
        .error(&[400, 404], &["MANIFEST_BLOB_UNKNOWN"], why);
    reg.get(
        "GET the rejected manifest",
        &format!("/v2/{repo}/manifests/{}", img.manifest.digest),
    )
    .status(404, "a rejected manifest is not stored");

    // Config missing only.
    let only_layer = Manifest::from_value(
        &image_manifest_value(
            Blob::config(1919).descriptor(),
            &[img.layers[0].descriptor()],
        ),
        MT_MANIFEST,
    );
    reg.put_manifest(repo, "config-missing", &only_layer).error(
        &[400, 404],
        &["MANIFEST_BLOB_UNKNOWN"],
        why,
    );

    // An index referencing a manifest that does not exist.
    let index = Manifest::from_value(
        &json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [img.manifest.descriptor()]}),
        MT_INDEX,
    );
    reg.put_manifest(repo, "index-missing-child", &index)
        .error(&[400, 404], &["MANIFEST_BLOB_UNKNOWN"], "code-5 MANIFEST_BLOB_UNKNOWN: \"manifest references a manifest or blob unknown to registry\"");

    // Once everything is there, it goes through.
    reg.push_blob(repo, &img.layers[1]);
    reg.put_manifest(repo, "complete", &img.manifest)
        .status(201, "with all blobs present the manifest is accepted");
    reg.put_manifest(repo, "index-complete", &index)
        .status(201, "with the child manifest present the index is accepted");
}

#[test]
fn push_09_manifest_with_subject() {
    let reg = Registry::start();
    let repo = "conformance/push-subject";
    let subject = image(20);
    let empty = Blob::empty_json();
    reg.push_blob(repo, &empty);
    let sig = Blob::new(
        b"signature bytes".to_vec(),
        "application/vnd.example.signature",
    );
    reg.push_blob(repo, &sig);

    let artifact = |subject_desc: Value| {
        let mut v = image_manifest_value(empty.descriptor(), &[sig.descriptor()]);
        v["artifactType"] = json!("application/vnd.example.signature.v1");
        v["subject"] = subject_desc;
        Manifest::from_value(&v, MT_MANIFEST)
    };

    // Subject does not exist yet: MUST be accepted.
    let before = artifact(subject.manifest.descriptor());
    let r = reg.put_manifest(repo, &before.digest.clone(), &before);
    r.status(201, "\"A registry MUST initially accept an otherwise valid manifest with a subject field that references a manifest that does not exist in the repository\"");
    r.header_eq("OCI-Subject", &subject.manifest.digest, "\"a registry implementation that supports the referrers API MUST respond with the response header OCI-Subject: <subject digest>\"");

    // Subject exists.
    reg.push_image(repo, &subject, Some("subject"));
    let mut v = image_manifest_value(empty.descriptor(), &[sig.descriptor()]);
    v["artifactType"] = json!("application/vnd.example.sbom.v1");
    v["subject"] = subject.manifest.descriptor();
    v["annotations"] = json!({"org.example.kind": "after"});
    let after = Manifest::from_value(&v, MT_MANIFEST);
    let r = reg.put_manifest(repo, "sbom", &after);
    r.status(201, "an artifact with an existing subject is accepted");
    r.header_eq(
        "OCI-Subject",
        &subject.manifest.digest,
        "\"MUST respond with the response header OCI-Subject: <subject digest>\"",
    );

    // A manifest without subject carries no OCI-Subject.
    let plain = image(21);
    reg.push_blob(repo, &plain.config);
    for l in &plain.layers {
        reg.push_blob(repo, l);
    }
    let r = reg.put_manifest(repo, "plain", &plain.manifest);
    r.status(201, "plain manifest");
    if r.header("OCI-Subject").is_some() {
        r.fail("OCI-Subject on a manifest without a subject field");
    }
}

#[test]
fn push_10_manifest_too_large() {
    // "A registry SHOULD enforce some limit on the maximum manifest size that it can accept. A registry that
    //  enforces this limit SHOULD respond to a request to push a manifest over this limit with a response code
    //  413 Payload Too Large. Client and registry implementations SHOULD expect to be able to support manifest
    //  pushes of at least 4 megabytes."
    let reg = Registry::start();
    let repo = "conformance/push-large";
    let img = image(22);
    reg.push_blob(repo, &img.config);
    for l in &img.layers {
        reg.push_blob(repo, l);
    }
    let build = |pad: usize| {
        let mut v = image_manifest_value(img.config.descriptor(), &[img.layers[0].descriptor()]);
        v["annotations"] = json!({"org.example.padding": "a".repeat(pad)});
        Manifest::from_value(&v, MT_MANIFEST)
    };
    // Just under 4 MiB: accepted.
    let under = build(4 * 1024 * 1024 - 4096);
    assert!(under.bytes.len() < 4 * 1024 * 1024);
    reg.put_manifest(repo, "just-under-4mib", &under)
        .status(201, "\"registry implementations SHOULD expect to be able to support manifest pushes of at least 4 megabytes\"");
    reg.get(
        "GET the ~4 MiB manifest",
        &format!("/v2/{repo}/manifests/just-under-4mib"),
    )
    .status(200, "stored")
    .body_eq(&under.bytes, "the ~4 MiB manifest");
    // Over 4 MiB: 413.
    let over = build(4 * 1024 * 1024 + 1024);
    let r = reg
        .try_send(
            "PUT /manifests/over-4mib (4 MiB + 1 KiB)",
            reg.req(Method::PUT, &format!("/v2/{repo}/manifests/over-4mib"))
                .header("Content-Type", MT_MANIFEST)
                .body(over.bytes.clone()),
        )
        .unwrap_or_else(|e| {
            panic!("{e}\n  a manifest over the limit SHOULD be answered with 413 Payload Too Large; the connection failed instead (the server must let the client read its 413, e.g. by draining the body)")
        });
    r.status(
        413,
        "a manifest over the registry's 4 MiB limit is 413 Payload Too Large",
    );
    if serde_json::from_slice::<Value>(&r.body).is_ok() {
        r.error_codes();
    }
    reg.get(
        "GET the oversized manifest's tag",
        &format!("/v2/{repo}/manifests/over-4mib"),
    )
    .status(404, "the oversized manifest was not stored");
}

#[test]
fn push_11_invalid_names_and_tags() {
    let reg = Registry::start();
    let img = image(23);

    // <name> MUST match [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
    for name in [
        "Upper/case",
        "conformance/Repo",
        "-leading",
        "trailing-",
        "a..b",
        "a___b",
        "a/.b",
        "x_/y",
        "a-/b",
    ] {
        reg.send(
            format!("POST /v2/{name}/blobs/uploads/ (invalid name)"),
            reg.req(Method::POST, &format!("/v2/{name}/blobs/uploads/")),
        )
        .lenient_error(
            &["NAME_INVALID", "NAME_UNKNOWN"],
            "<name> MUST match the spec's regular expression; code-8 NAME_INVALID",
        );
        reg.put_manifest(name, "latest", &img.manifest)
            .lenient_error(
                &["NAME_INVALID", "NAME_UNKNOWN"],
                "an invalid <name> on the manifest endpoint is rejected",
            );
    }
    // 256+ characters of name are not rejected by the regex (the length note is a SHOULD); skip.

    // Valid names of every separator kind work.
    for name in ["a", "a0/b1/c2/d3", "x.y/z_w/m__n/p-q/r---s"] {
        reg.push_image(name, &img, Some("latest"));
        reg.get(
            &format!("GET /v2/{name}/manifests/latest"),
            &format!("/v2/{name}/manifests/latest"),
        )
        .status(200, "a valid multi-component name is served")
        .body_eq(&img.manifest.bytes, "the manifest");
    }

    // <tag> MUST be at most 128 characters and match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
    let repo = "conformance/tags";
    reg.push_blob(repo, &img.config);
    for l in &img.layers {
        reg.push_blob(repo, l);
    }
    let long = "a".repeat(129);
    for tag in [
        "-dash-first",
        ".dot-first",
        long.as_str(),
        "plus+sign",
        "semi;colon",
    ] {
        reg.put_manifest(repo, tag, &img.manifest).lenient_error(
            &[
                "MANIFEST_INVALID",
                "TAG_INVALID",
                "NAME_INVALID",
                "DIGEST_INVALID",
            ],
            "a <tag-or-digest> that is neither a digest nor a valid tag is rejected",
        );
    }
    let longest = format!("_{}", "Z".repeat(127));
    for tag in ["_", "v1.2.3_rc-1", "UPPER.lower-9", longest.as_str()] {
        reg.put_manifest(repo, tag, &img.manifest)
            .status(201, "a valid tag is accepted");
    }
    let tags = reg.tags(repo);
    let mut want = vec![
        "_".to_string(),
        "v1.2.3_rc-1".into(),
        "UPPER.lower-9".into(),
        longest.clone(),
    ];
    want.sort();
    let mut got = tags.clone();
    got.sort();
    assert_eq!(
        got, want,
        "GET /v2/{repo}/tags/list: only the valid tags exist (invalid ones were rejected)"
    );
}

#[test]
fn push_12_concurrent_uploads_of_the_same_blob() {
    // "If process A and B upload the same layer at the same time, both operations will proceed and the first to
    //  complete will be stored in the registry."
    let reg = Registry::start();
    let repo = "conformance/push-concurrent";
    let blob = Blob::layer(24, 3 * 1024 * 1024 + 17);
    let half = blob.data.len() / 2;

    // Two interleaved sessions, step by step.
    let a = reg.start_upload(repo);
    let b = reg.start_upload(repo);
    let patch = |loc: Url, from: usize, to: usize, who: &str| {
        let r = reg.send(
            format!("PATCH session {who} {from}-{}", to - 1),
            reg.req_url(Method::PATCH, loc)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{from}-{}", to - 1))
                .body(blob.data[from..to].to_vec()),
        );
        r.status(202, "a chunk is 202 Accepted");
        r.location(&reg)
    };
    let a = patch(a, 0, half, "A");
    let b = patch(b, 0, half, "B");
    let a = patch(a, half, blob.data.len(), "A");
    let b = patch(b, half, blob.data.len(), "B");
    for (who, loc) in [("B", b), ("A", a)] {
        reg.send(
            format!("PUT session {who} ?digest="),
            reg.req_url(Method::PUT, with_query(loc, &[("digest", &blob.digest)]))
                .body(Vec::<u8>::new()),
        )
        .status(
            201,
            "both sessions of the same blob complete with 201 Created",
        );
    }
    reg.get(
        "GET the twice-uploaded blob",
        &format!("/v2/{repo}/blobs/{}", blob.digest),
    )
    .status(200, "the blob exists")
    .body_eq(&blob.data, "the blob");

    // Four threads, really at the same time, into two repositories.
    let blob2 = Blob::layer(25, 2 * 1024 * 1024 + 5);
    // A rendezvous that cannot deadlock: a thread that panics still arrives.
    let arrived = AtomicUsize::new(0);
    struct Arrive<'a>(&'a AtomicUsize);
    impl Drop for Arrive<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    std::thread::scope(|s| {
        for i in 0..4 {
            let (reg, blob2, arrived) = (&reg, &blob2, &arrived);
            s.spawn(move || {
                let repo = if i % 2 == 0 {
                    "conformance/push-concurrent"
                } else {
                    "conformance/push-concurrent-2"
                };
                let guard = Arrive(arrived);
                let loc = reg.start_upload(repo);
                let r = reg.send(
                    format!("thread {i}: PATCH first half"),
                    reg.req_url(Method::PATCH, loc)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", format!("0-{}", half - 1))
                        .body(blob2.data[..half].to_vec()),
                );
                r.status(202, "a chunk is 202");
                let loc = r.location(reg);
                drop(guard);
                let start = Instant::now();
                while arrived.load(Ordering::SeqCst) < 4
                    && start.elapsed() < Duration::from_secs(60)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                reg.send(
                    format!("thread {i}: PUT the second half ?digest="),
                    reg.req_url(Method::PUT, with_query(loc, &[("digest", &blob2.digest)]))
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", format!("{half}-{}", blob2.data.len() - 1))
                        .body(blob2.data[half..].to_vec()),
                )
                .status(
                    201,
                    "concurrent uploads of the same blob all complete with 201",
                );
            });
        }
    });
    for repo in [
        "conformance/push-concurrent",
        "conformance/push-concurrent-2",
    ] {
        reg.get(
            "GET the concurrently uploaded blob",
            &format!("/v2/{repo}/blobs/{}", blob2.digest),
        )
        .status(200, "the blob exists")
        .body_eq(&blob2.data, "the blob, intact");
    }
}

// ===========================================================================
// 03 Content discovery
// ===========================================================================

fn tag_page(
    reg: &Registry,
    repo: &str,
    what: &str,
    query: &[(&str, &str)],
) -> (Vec<String>, Option<String>, Resp) {
    let r = reg.send(
        what.to_string(),
        reg.req(Method::GET, &format!("/v2/{repo}/tags/list"))
            .query(query),
    );
    r.status(
        200,
        "\"Assuming a repository is found, this request MUST return a 200 OK response code.\"",
    );
    let tags = r.tag_list(repo);
    let link = r.header("Link");
    (tags, link, r)
}

/// The URL inside `<...>; rel="next"`.
fn next_link(r: &Resp, link: &str) -> String {
    let ok = link.contains("rel=\"next\"") || link.contains("rel=next");
    let (start, end) = (link.find('<'), link.find('>'));
    match (ok, start, end) {
        (true, Some(s), Some(e)) if s < e => link[s + 1..e].to_string(),
        _ => r.fail(&format!("\"the Link header MUST be set according to RFC 5988 with the Relation Type rel=\\\"next\\\"\", got {link:?}")),
    }
}

#[test]
fn discovery_01_tags_list() {
    let reg = Registry::start();
    let repo = "conformance/discovery-tags";
    let img = image(30);
    reg.push_image(repo, &img, Some("test0"));
    let mut all: Vec<String> = [
        "test0", "test1", "test2", "test3", "latest", "v1", "v1.0", "v1.0.1", "v10", "v2", "a-b",
        "a_b",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for t in &all[1..] {
        reg.put_manifest(repo, t, &img.manifest)
            .status(201, "tagging");
    }
    // Lowercase tags only: case-insensitive and ASCIIbetical order agree except for '_' vs letters,
    // and a-b / a_b sort the same in both ('-' < '_').
    all.sort();

    let (tags, _, r) = tag_page(&reg, repo, "GET /tags/list", &[]);
    if tags != all {
        r.fail(&format!("\"the tags MUST be in lexical ... or ASCIIbetical order\": expected {all:?}, got {tags:?}"));
    }

    // n limits
    let (tags, link, r) = tag_page(&reg, repo, "GET /tags/list?n=5", &[("n", "5")]);
    if tags != all[..5] {
        r.fail(&format!(
            "?n=5: expected the first five {:?}, got {tags:?}",
            &all[..5]
        ));
    }
    let link = link.unwrap_or_else(|| {
        r.fail("?n=5 with more tags available: no Link header (spec: MAY; Barge implements it)")
    });
    let next = next_link(&r, &link);
    let nu = reg.url(&next);
    if nu.path() != format!("/v2/{repo}/tags/list") {
        r.fail(&format!(
            "Link must point at /v2/{repo}/tags/list, got {next}"
        ));
    }

    // Walk the Link chain with n=5.
    let mut walked = tags.clone();
    let mut url = nu;
    for _ in 0..10 {
        let r = reg.send(
            format!("GET Link {url}"),
            reg.req_url(Method::GET, url.clone()),
        );
        r.status(200, "following the Link is 200");
        let page = r.tag_list(repo);
        if page.len() > 5 {
            r.fail("a page from the Link carries more than n tags");
        }
        walked.extend(page.iter().cloned());
        match r.header("Link") {
            Some(l) if !page.is_empty() => url = reg.url(&next_link(&r, &l)),
            _ => break,
        }
    }
    assert_eq!(
        walked, all,
        "walking the Link chain with n=5 yields every tag once, in order"
    );

    // last
    let (tags, _, r) = tag_page(
        &reg,
        repo,
        "GET /tags/list?n=3&last=<5th tag>",
        &[("n", "3"), ("last", all[4].as_str())],
    );
    if tags != all[5..8] {
        r.fail(&format!("\"A request of this sort will return up to <int> tags, beginning non-inclusively with <tagname>\": expected {:?}, got {tags:?}", &all[5..8]));
    }
    let (tags, _, r) = tag_page(
        &reg,
        repo,
        "GET /tags/list?last=<5th tag> (no n)",
        &[("last", all[4].as_str())],
    );
    if tags != all[5..] {
        r.fail(&format!("\"When using the last query parameter, the n parameter is OPTIONAL.\": expected {:?}, got {tags:?}", &all[5..]));
    }
    let (tags, link, r) = tag_page(
        &reg,
        repo,
        "GET /tags/list?n=5&last=<last tag>",
        &[("n", "5"), ("last", all[all.len() - 1].as_str())],
    );
    if !tags.is_empty() {
        r.fail("nothing comes after the last tag");
    }
    let _ = link;
    // A last that is not itself a tag: starts after where it would sort.
    let (tags, _, r) = tag_page(
        &reg,
        repo,
        "GET /tags/list?n=2&last=test",
        &[("n", "2"), ("last", "test")],
    );
    if tags != ["test0", "test1"] {
        r.fail(&format!("last=test: expected [test0, test1], got {tags:?}"));
    }

    // n=0
    let (tags, link, r) = tag_page(&reg, repo, "GET /tags/list?n=0", &[("n", "0")]);
    if !tags.is_empty() || link.is_some() {
        r.fail("\"When n is zero, this endpoint MUST return an empty list, and MUST NOT include a Link header.\"");
    }
    // n larger than the count
    let (tags, link, r) = tag_page(&reg, repo, "GET /tags/list?n=1000", &[("n", "1000")]);
    if tags != all {
        r.fail("?n=1000 returns every tag");
    }
    if link.is_some() {
        r.fail("?n=1000 returned everything yet sent a Link to a next page");
    }

    // Unknown repository
    reg.get(
        "GET /tags/list of an unknown repository",
        "/v2/conformance/no-such-repo/tags/list",
    )
    .error(
        &[404],
        &["NAME_UNKNOWN"],
        "end-8a failure 404 (code-9 NAME_UNKNOWN)",
    );
}

struct Referrer {
    manifest: Manifest,
    artifact_type: Option<&'static str>,
    annotation: String,
}

const ANNOTATION_KEY: &str = "org.opencontainers.conformance.test";
const TYPE_A: &str = "application/vnd.nhl.peanut.butter.bagel";
const TYPE_B: &str = "application/vnd.nba.strawberry.jam.croissant";
const TYPE_INDEX: &str = "application/vnd.food.stand";

fn check_referrers(r: &Resp, subject: &str, want: &[&Referrer]) {
    if r.header("Content-Type").as_deref() != Some(MT_INDEX) {
        r.fail(&format!(
            "\"The Content-Type header MUST be set to {MT_INDEX}\""
        ));
    }
    let v = r.json();
    if v.get("schemaVersion") != Some(&json!(2))
        || v.get("mediaType").and_then(Value::as_str) != Some(MT_INDEX)
    {
        r.fail("\"the response MUST be a JSON body with an image index\": schemaVersion 2, mediaType index");
    }
    let got = v
        .get("manifests")
        .and_then(Value::as_array)
        .unwrap_or_else(|| r.fail("\"If a query results in no matching referrers, an empty manifest list MUST be returned.\" (manifests is an array)"));
    let mut got_digests: Vec<&str> = got
        .iter()
        .map(|d| d.get("digest").and_then(Value::as_str).unwrap_or(""))
        .collect();
    let mut want_digests: Vec<&str> = want.iter().map(|w| w.manifest.digest.as_str()).collect();
    got_digests.sort();
    want_digests.sort();
    if got_digests != want_digests {
        r.fail(&format!(
            "referrers of {subject}: expected digests {want_digests:?}, got {got_digests:?}"
        ));
    }
    for w in want {
        let d = got
            .iter()
            .find(|d| d.get("digest").and_then(Value::as_str) == Some(w.manifest.digest.as_str()))
            .expect("matched above");
        if d.get("mediaType").and_then(Value::as_str) != Some(w.manifest.media_type.as_str()) {
            r.fail(&format!(
                "descriptor {}: mediaType must be {}",
                w.manifest.digest, w.manifest.media_type
            ));
        }
        if d.get("size").and_then(Value::as_u64) != Some(w.manifest.bytes.len() as u64) {
            r.fail(&format!(
                "descriptor {}: size must be {}",
                w.manifest.digest,
                w.manifest.bytes.len()
            ));
        }
        let at = d.get("artifactType").and_then(Value::as_str);
        if at != w.artifact_type {
            r.fail(&format!(
                "descriptor {}: artifactType expected {:?}, got {at:?} (\"The descriptors MUST include an artifactType field that is set to the value of the artifactType in the image manifest or index, if present. If the artifactType is empty or missing in the image manifest, the value of artifactType MUST be set to the config descriptor mediaType value. If the artifactType is empty or missing in an index, the artifactType MUST be omitted.\")",
                w.manifest.digest, w.artifact_type
            ));
        }
        let want_ann = json!({ANNOTATION_KEY: w.annotation});
        if d.get("annotations") != Some(&want_ann) {
            r.fail(&format!("descriptor {}: annotations expected {want_ann}, got {:?} (\"The descriptors MUST include annotations from the image manifest or index.\")", w.manifest.digest, d.get("annotations")));
        }
    }
}

#[test]
fn discovery_02_referrers() {
    let reg = Registry::start();
    let repo = "conformance/discovery-referrers";
    let subject = image(40);
    let absent_subject = image(41); // never pushed
    let empty = Blob::empty_json();
    assert_eq!(empty.digest, EMPTY_JSON_DIGEST);
    let blob_a = Blob::new(
        b"NHL Peanut Butter on my NHL bagel".to_vec(),
        "application/vnd.nhl.peanut.butter.bagel.layer",
    );
    let blob_b = Blob::new(
        b"NBA Strawberry Jam on my NBA croissant".to_vec(),
        "application/vnd.nba.strawberry.jam.layer",
    );

    let mk = |config: Value,
              layer: &Blob,
              artifact_type: Option<&'static str>,
              subj: &Manifest,
              ann: &str,
              expect_type: &'static str| {
        let mut v = image_manifest_value(config, &[layer.descriptor()]);
        if let Some(t) = artifact_type {
            v["artifactType"] = json!(t);
        }
        v["subject"] = subj.descriptor();
        v["annotations"] = json!({ANNOTATION_KEY: ann});
        Referrer {
            manifest: Manifest::from_value(&v, MT_MANIFEST),
            artifact_type: Some(expect_type),
            annotation: ann.to_string(),
        }
    };
    // A: type on the config's mediaType; A': artifactType + empty config.
    let ref_a_config = mk(
        empty.descriptor_as(TYPE_A),
        &blob_a,
        None,
        &subject.manifest,
        "test config a",
        TYPE_A,
    );
    let ref_a_layer = mk(
        empty.descriptor(),
        &blob_a,
        Some(TYPE_A),
        &subject.manifest,
        "test layer a",
        TYPE_A,
    );
    let ref_b_config = mk(
        empty.descriptor_as(TYPE_B),
        &blob_b,
        None,
        &subject.manifest,
        "test config b",
        TYPE_B,
    );
    let ref_b_layer = mk(
        empty.descriptor(),
        &blob_b,
        Some(TYPE_B),
        &subject.manifest,
        "test layer b",
        TYPE_B,
    );
    let ref_c_layer = mk(
        empty.descriptor(),
        &blob_a,
        Some(TYPE_A),
        &absent_subject.manifest,
        "test layer c",
        TYPE_A,
    );
    let index_of = |artifact_type: Option<&'static str>, ann: &str| {
        let mut v = json!({"schemaVersion": 2, "mediaType": MT_INDEX,
            "manifests": [ref_a_config.manifest.descriptor(), ref_a_layer.manifest.descriptor()],
            "subject": subject.manifest.descriptor(),
            "annotations": {ANNOTATION_KEY: ann}});
        if let Some(t) = artifact_type {
            v["artifactType"] = json!(t);
        }
        Referrer {
            manifest: Manifest::from_value(&v, MT_INDEX),
            artifact_type,
            annotation: ann.to_string(),
        }
    };
    let ref_index = index_of(Some(TYPE_INDEX), "test index");
    let ref_index_untyped = index_of(None, "test index without artifactType");

    reg.push_blob(repo, &empty);
    reg.push_blob(repo, &blob_a);
    let put_ref = |r: &Referrer, subj: &str| {
        let resp = reg.put_manifest(repo, &r.manifest.digest.clone(), &r.manifest);
        resp.status(201, "\"A registry MUST initially accept an otherwise valid manifest with a subject field that references a manifest that does not exist in the repository\"");
        resp.header_eq(
            "OCI-Subject",
            subj,
            "\"MUST respond with the response header OCI-Subject: <subject digest>\"",
        );
    };
    // Before the subject exists.
    put_ref(&ref_a_config, &subject.manifest.digest);
    put_ref(&ref_a_layer, &subject.manifest.digest);
    put_ref(&ref_index, &subject.manifest.digest);
    // The subject.
    reg.push_image(repo, &subject, Some("tagged"));
    // After.
    reg.push_blob(repo, &blob_b);
    put_ref(&ref_b_config, &subject.manifest.digest);
    put_ref(&ref_b_layer, &subject.manifest.digest);
    put_ref(&ref_index_untyped, &subject.manifest.digest);
    put_ref(&ref_c_layer, &absent_subject.manifest.digest);
    // A referrer of the same subject in another repository is not listed here.
    let other_repo = "conformance/discovery-referrers-other";
    reg.push_blob(other_repo, &empty);
    reg.push_blob(other_repo, &blob_b);
    let foreign = mk(
        empty.descriptor(),
        &blob_b,
        Some(TYPE_B),
        &subject.manifest,
        "elsewhere",
        TYPE_B,
    );
    reg.put_manifest(other_repo, "foreign", &foreign.manifest)
        .status(201, "a referrer in another repository");

    // Nothing refers to an unknown digest.
    let r = reg.get(
        "GET /referrers/<unknown digest>",
        &format!("/v2/{repo}/referrers/{DUMMY_DIGEST}"),
    );
    r.status(200, "\"If the registry supports the referrers API, the registry MUST NOT return a 404 Not Found to a referrers API requests.\"");
    check_referrers(&r, DUMMY_DIGEST, &[]);

    // All referrers of the subject.
    let all = [
        &ref_a_config,
        &ref_a_layer,
        &ref_b_config,
        &ref_b_layer,
        &ref_index,
        &ref_index_untyped,
    ];
    let r = reg.get(
        "GET /referrers/<subject>",
        &format!("/v2/{repo}/referrers/{}", subject.manifest.digest),
    );
    r.status(
        200,
        "\"Assuming a repository is found, this request MUST return a 200 OK response code.\"",
    );
    check_referrers(&r, &subject.manifest.digest, &all);
    if r.header("OCI-Filters-Applied").is_some() {
        r.fail("OCI-Filters-Applied without a filter requested");
    }

    // Filtered.
    for (t, want) in [
        (TYPE_A, vec![&ref_a_config, &ref_a_layer]),
        (TYPE_B, vec![&ref_b_config, &ref_b_layer]),
        (TYPE_INDEX, vec![&ref_index]),
        ("application/vnd.nothing", vec![]),
    ] {
        let r = reg.send(
            format!("GET /referrers/<subject>?artifactType={t}"),
            reg.req(
                Method::GET,
                &format!("/v2/{repo}/referrers/{}", subject.manifest.digest),
            )
            .query(&[("artifactType", t)]),
        );
        r.status(200, "filtered referrers are 200");
        r.header_eq("OCI-Filters-Applied", "artifactType", "\"If filtering is requested and applied, the response MUST include a header OCI-Filters-Applied: artifactType\" (filtering is a SHOULD; Barge implements it)");
        check_referrers(&r, &subject.manifest.digest, &want);
    }

    // The subject that was never pushed.
    let r = reg.get(
        "GET /referrers/<missing subject>",
        &format!("/v2/{repo}/referrers/{}", absent_subject.manifest.digest),
    );
    r.status(
        200,
        "Go suite: GET request to missing manifest should yield 200",
    );
    check_referrers(&r, &absent_subject.manifest.digest, &[&ref_c_layer]);

    // Invalid digest syntax.
    for bad in ["sha256:nothex", "notadigest", "sha256:abc"] {
        reg.get(&format!("GET /referrers/{bad}"), &format!("/v2/{repo}/referrers/{bad}"))
            .status(400, "\"If the request is invalid, such as a <digest> with an invalid syntax, a 400 Bad Request MUST be returned.\"");
    }
}

// ===========================================================================
// 04 Content management
// ===========================================================================

#[test]
fn management_01_delete_tag() {
    let reg = Registry::start();
    let repo = "conformance/management-tags";
    let img = image(50);
    reg.push_image(repo, &img, Some("tagtest0"));
    reg.put_manifest(repo, "keep", &img.manifest)
        .status(201, "second tag");
    let before = reg.tags(repo);

    reg.delete(
        "DELETE /manifests/<tag>",
        &format!("/v2/{repo}/manifests/tagtest0"),
    )
    .status(
        202,
        "\"To delete a tag ... Upon success, the registry MUST respond with a 202 Accepted code.\"",
    );
    reg.get(
        "GET the deleted tag",
        &format!("/v2/{repo}/manifests/tagtest0"),
    )
    .error(
        &[404],
        &["MANIFEST_UNKNOWN"],
        "\"Once deleted, a GET to /v2/<name>/manifests/<tag> will return a 404.\"",
    );
    let after = reg.tags(repo);
    if after.len() >= before.len() || after.contains(&"tagtest0".to_string()) {
        panic!(
            "GET /tags/list should reflect the tag deletion: before {before:?}, after {after:?}"
        );
    }
    reg.get("GET the other tag", &format!("/v2/{repo}/manifests/keep"))
        .status(
            200,
            "deleting one tag leaves the other tags of the manifest",
        )
        .body_eq(&img.manifest.bytes, "the manifest");
    reg.delete(
        "DELETE the deleted tag again",
        &format!("/v2/{repo}/manifests/tagtest0"),
    )
    .status(404, "the tag is unknown now");
}

#[test]
fn management_02_delete_manifest() {
    let reg = Registry::start();
    let repo = "conformance/management-manifests";
    let img = image(51);
    reg.push_image(repo, &img, Some("tagtest0"));
    reg.put_manifest(repo, "tagtest1", &img.manifest)
        .status(201, "second tag");
    let keep = image(52);
    reg.push_image(repo, &keep, Some("other"));

    let r = reg.delete(
        "DELETE /manifests/<digest>",
        &format!("/v2/{repo}/manifests/{}", img.manifest.digest),
    );
    r.status(202, "\"To delete a manifest ... Upon success, the registry MUST respond with a 202 Accepted code.\"");
    reg.get(
        "GET the deleted manifest by digest",
        &format!("/v2/{repo}/manifests/{}", img.manifest.digest),
    )
    .error(
        &[404],
        &["MANIFEST_UNKNOWN"],
        "\"Once deleted, a GET to /v2/<name>/manifests/<digest> ... will return a 404.\"",
    );
    reg.head(
        "HEAD the deleted manifest by digest",
        &format!("/v2/{repo}/manifests/{}", img.manifest.digest),
    )
    .status(404, "deleted");
    for t in ["tagtest0", "tagtest1"] {
        reg.get(&format!("GET tag {t} of the deleted manifest"), &format!("/v2/{repo}/manifests/{t}"))
            .status(404, "\"Once deleted, a GET to /v2/<name>/manifests/<digest> and any tag pointing to that digest will return a 404.\"");
    }
    assert_eq!(
        reg.tags(repo),
        vec!["other".to_string()],
        "GET /tags/list reflects the manifest deletion"
    );
    reg.get(
        "GET the untouched manifest",
        &format!("/v2/{repo}/manifests/other"),
    )
    .status(200, "other manifests stay")
    .body_eq(&keep.manifest.bytes, "untouched");
    reg.delete(
        "DELETE the manifest again",
        &format!("/v2/{repo}/manifests/{}", img.manifest.digest),
    )
    .error(
        &[404],
        &["MANIFEST_UNKNOWN"],
        "end-9 failure 404: the manifest is gone",
    );
    reg.delete(
        "DELETE a manifest in a nonexistent repository",
        &format!(
            "/v2/conformance/no-such-repo/manifests/{}",
            img.manifest.digest
        ),
    )
    .status(
        404,
        "\"If the repository does not exist, the response MUST return 404 Not Found.\"",
    );

    // Deleting a referrer takes it out of the referrers list.
    let empty = Blob::empty_json();
    reg.push_blob(repo, &empty);
    let mut v = image_manifest_value(empty.descriptor(), &[empty.descriptor()]);
    v["artifactType"] = json!(TYPE_A);
    v["subject"] = keep.manifest.descriptor();
    let referrer = Manifest::from_value(&v, MT_MANIFEST);
    reg.put_manifest(repo, &referrer.digest.clone(), &referrer)
        .status(201, "a referrer");
    let r = reg.get(
        "GET referrers before deletion",
        &format!("/v2/{repo}/referrers/{}", keep.manifest.digest),
    );
    r.status(200, "referrers");
    let n = r.json()["manifests"].as_array().map(Vec::len).unwrap_or(0);
    if n != 1 {
        r.fail("one referrer expected before deletion");
    }
    reg.delete(
        "DELETE the referrer",
        &format!("/v2/{repo}/manifests/{}", referrer.digest),
    )
    .status(202, "deleting a referrer manifest");
    let r = reg.get(
        "GET referrers after deletion",
        &format!("/v2/{repo}/referrers/{}", keep.manifest.digest),
    );
    r.status(200, "referrers");
    if r.json()["manifests"].as_array().map(Vec::len) != Some(0) {
        r.fail("a deleted manifest is no longer a referrer (\"Each descriptor is of an image manifest or index in the same <name> namespace with a subject field\")");
    }
}

#[test]
fn management_03_delete_blob() {
    let reg = Registry::start();
    let repo = "conformance/management-blobs";
    let img = image(53);
    reg.push_image(repo, &img, Some("tagtest0"));
    reg.delete(
        "DELETE the manifest first",
        &format!("/v2/{repo}/manifests/{}", img.manifest.digest),
    )
    .status(202, "manifest delete");

    for blob in [&img.config, &img.layers[0]] {
        reg.delete("DELETE /blobs/<digest>", &format!("/v2/{repo}/blobs/{}", blob.digest))
            .status(202, "\"To delete a blob ... Upon success, the registry MUST respond with code 202 Accepted.\"");
        reg.get(
            "GET the deleted blob",
            &format!("/v2/{repo}/blobs/{}", blob.digest),
        )
        .error(
            &[404],
            &["BLOB_UNKNOWN"],
            "GET request to deleted blob URL should yield 404 response",
        );
        reg.head(
            "HEAD the deleted blob",
            &format!("/v2/{repo}/blobs/{}", blob.digest),
        )
        .status(404, "deleted");
        reg.delete(
            "DELETE the deleted blob again",
            &format!("/v2/{repo}/blobs/{}", blob.digest),
        )
        .error(
            &[404],
            &["BLOB_UNKNOWN"],
            "\"If the blob is not found, a 404 Not Found code MUST be returned.\"",
        );
    }
    reg.get(
        "GET the layer not deleted",
        &format!("/v2/{repo}/blobs/{}", img.layers[1].digest),
    )
    .status(200, "the other blob stays")
    .body_eq(&img.layers[1].data, "the other blob");
    reg.delete(
        "DELETE a never-pushed blob",
        &format!("/v2/{repo}/blobs/{DUMMY_DIGEST}"),
    )
    .error(
        &[404],
        &["BLOB_UNKNOWN"],
        "\"If the blob is not found, a 404 Not Found code MUST be returned.\"",
    );

    // Deleted from one repository, the blob can be pushed again.
    reg.push_blob(repo, &img.config);
    reg.get(
        "GET the re-pushed blob",
        &format!("/v2/{repo}/blobs/{}", img.config.digest),
    )
    .status(200, "re-pushed after delete")
    .body_eq(&img.config.data, "the blob");
}

#[test]
fn management_04_deletion_disabled() {
    let reg = Registry::start_with(|c| c.delete_enabled = false);
    let repo = "conformance/management-disabled";
    let img = image(54);
    reg.push_image(repo, &img, Some("tagtest0"));

    reg.delete("DELETE /manifests/<tag> (deletion disabled)", &format!("/v2/{repo}/manifests/tagtest0"))
        .status_in(&[400, 405], "\"If tag deletion is disabled, the registry MUST respond with either a 400 Bad Request or a 405 Method Not Allowed.\"");
    reg.delete("DELETE /manifests/<digest> (deletion disabled)", &format!("/v2/{repo}/manifests/{}", img.manifest.digest))
        .status_in(&[400, 405], "\"If manifest deletion is disabled, the registry MUST respond with either a 400 Bad Request or a 405 Method Not Allowed.\"");
    reg.delete("DELETE /blobs/<digest> (deletion disabled)", &format!("/v2/{repo}/blobs/{}", img.config.digest))
        .status_in(&[400, 405], "\"If blob deletion is disabled, the registry MUST respond with either a 400 Bad Request or a 405 Method Not Allowed.\"");
    reg.get(
        "GET the tag after refused deletes",
        &format!("/v2/{repo}/manifests/tagtest0"),
    )
    .status(200, "nothing was deleted");
    reg.get(
        "GET the blob after refused deletes",
        &format!("/v2/{repo}/blobs/{}", img.config.digest),
    )
    .status(200, "nothing was deleted");
}

// ===========================================================================
// HTTP hygiene around early rejections
// ===========================================================================

/// Reads one HTTP/1.1 response (headers, then a Content-Length body) from `s`.
fn read_raw_response(s: &mut std::net::TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("connection closed after {} header bytes", buf.len()),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((head, body))
}

#[test]
fn push_13_connection_reuse_after_a_rejected_chunk() {
    // A PATCH answered 416 before its body is read leaves the body on a keep-alive connection.
    // RFC 9112 §9.3: a server "MUST read the entire request message body or close the connection after
    // sending its response"; if it closes, it must say so (Connection: close) or a client that reuses the
    // pooled connection — as reqwest/Go/docker do — fails its next request (seen as hyper IncompleteMessage
    // in push_03 when the race goes the wrong way).
    use std::io::Write;
    let reg = Registry::start();
    let repo = "conformance/push-keepalive";
    let loc = reg.start_upload(repo);
    let chunk = rand_bytes(60, 256 * 1024);
    let addr = format!(
        "{}:{}",
        reg.base.host_str().expect("host"),
        reg.base.port().expect("port")
    );
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let path = match loc.query() {
        Some(q) => format!("{}?{q}", loc.path()),
        None => loc.path().to_string(),
    };
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Range: 1000-{}\r\nContent-Length: {}\r\n\r\n",
        1000 + chunk.len() - 1,
        chunk.len()
    );
    s.write_all(head.as_bytes())
        .expect("write the request head");
    // The server may answer before reading the body; a failed write then is fine.
    let _ = s.write_all(&chunk);
    let (resp_head, _) = read_raw_response(&mut s)
        .unwrap_or_else(|e| panic!("raw out-of-order PATCH: no response: {e}"));
    let status_line = resp_head.lines().next().unwrap_or("");
    assert!(
        status_line.contains(" 416"),
        "raw out-of-order PATCH: expected 416, got {status_line:?}\n{resp_head}"
    );
    if resp_head.to_ascii_lowercase().contains("connection: close") {
        return; // the server announced the close: conforming
    }
    // Keep-alive was implied: the connection must serve the next request.
    let next = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let outcome = s
        .write_all(next.as_bytes())
        .and_then(|_| read_raw_response(&mut s));
    match outcome {
        Ok((h, _)) if h.starts_with("HTTP/1.1 200") => {}
        Ok((h, _)) => panic!(
            "after a 416 to a PATCH whose body was not consumed, the kept-alive connection answered the next request with:\n{h}\n(the unread chunk was parsed as the next request)"
        ),
        Err(e) => panic!(
            "after a 416 to a PATCH (256 KiB body, no Connection: close in the response) the server dropped the connection before answering the next request on it: {e}\n  response to the PATCH:\n{resp_head}\n  RFC 9112 §9.3: read (drain) the body before answering, or send Connection: close with the 416; clients pool connections"
        ),
    }
}
