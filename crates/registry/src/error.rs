//! Errors: [`RegistryError`] for starting and running the server, and
//! [`ApiError`], an error answered to a client in the distribution spec's
//! JSON format (`{"errors":[{"code","message","detail"}]}`).

use std::io;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use barge_image::store::StoreError;

/// An error starting or running the registry server.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The storage root could not be opened.
    #[error("cannot open the registry storage at {root}: {source}")]
    Storage {
        /// The root.
        root: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source} (is another server using the port? pick another address)")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The htpasswd file is unusable.
    #[error("htpasswd file {path}: {reason}")]
    Htpasswd {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The TLS certificate or key is unusable.
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The token verification key is unusable.
    #[error("token auth key: {reason}")]
    TokenKey {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The async runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
    /// The server thread panicked.
    #[error("the registry server thread panicked")]
    Panicked,
}

/// The error codes of the distribution spec (plus `UNKNOWN` for server
/// faults, as distribution does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs, dead_code)] // the whole table of the spec, used or not
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unknown,
}

impl Code {
    /// The identifier in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The default HTTP status for the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    /// The spec code.
    pub code: Code,
    /// The HTTP status (usually `code.status()`).
    pub status: StatusCode,
    /// A human-readable message.
    pub message: String,
    /// Optional structured detail.
    pub detail: Option<serde_json::Value>,
    /// Extra headers (challenges, `Range` of an upload).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the code's default status.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Overrides the status.
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// Adds structured detail.
    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    /// Adds a response header (skipped if the value is not a valid header).
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// A server-side fault.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Unknown, message)
    }

    /// The JSON response.
    pub fn into_response(self) -> Response<Body> {
        let mut entry = serde_json::json!({
            "code": self.code.as_str(),
            "message": self.message,
        });
        if let Some(d) = self.detail {
            entry["detail"] = d;
        }
        let body = serde_json::json!({ "errors": [entry] }).to_string();
        let mut resp = Response::new(Body::from(body.clone()));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        for (k, v) in self.headers {
            h.append(k, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::DigestMismatch { .. } => ApiError::new(Code::DigestInvalid, e.to_string()),
            StoreError::SizeMismatch { .. } => ApiError::new(Code::SizeInvalid, e.to_string()),
            StoreError::InvalidDigest { .. } => ApiError::new(Code::DigestInvalid, e.to_string()),
            StoreError::UnsupportedDigestAlgorithm { .. } => {
                ApiError::new(Code::DigestInvalid, e.to_string())
            }
            StoreError::BlobNotFound { .. } => ApiError::new(Code::BlobUnknown, e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Maps an I/O error of request handling to a server fault naming `what`.
pub fn io_fault(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> ApiError {
    move |e| ApiError::internal(format!("{what}: {e}"))
}
