//! Object stores for lake locations: S3, GCS, Azure and HTTP(S), registered on first use from the
//! URL, so `--table t=s3://bucket/events/` works without any set-up step.
//!
//! Each store is built from the cloud's standard environment variables and credential chain (the
//! `object_store` builders' `from_env`: `AWS_*`, `GOOGLE_*`, `AZURE_*`), then from the session's
//! store options, then from a table's own `OPTIONS`. Options are named like DataFusion's and
//! `object_store`'s configuration keys with the cloud as prefix: `aws.endpoint`, `aws.region`,
//! `aws.access_key_id`, `gcp.service_account_path`, `azure.account_name`, ... Two more apply to
//! every cloud: `<cloud>.max_retries` and `<cloud>.retry_timeout` (seconds), how long a request is
//! retried before the statement fails.
//!
//! Stores are keyed by bucket (`s3://bucket`), as DataFusion keys them: the latest options given
//! for a bucket apply to every table in it.
//!
//! Credentials never appear in messages: every error leaving a [`crate::Lake`] passes through
//! [`LakeStores::redact`], which masks the values of secret options and of the clouds' secret
//! environment variables.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

/// The clouds whose options a session or table may carry, by option prefix.
const CLOUDS: &[(&str, Cloud)] =
    &[("aws.", Cloud::Aws), ("gcp.", Cloud::Gcp), ("google.", Cloud::Gcp), ("azure.", Cloud::Azure)];

/// Environment variables whose values are secrets, masked in every message.
const SECRET_ENV: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Aws,
    Gcp,
    Azure,
    Http,
}

impl Cloud {
    fn of(url: &Url) -> Option<Self> {
        match url.scheme() {
            "s3" | "s3a" => Some(Self::Aws),
            "gs" | "gcs" => Some(Self::Gcp),
            "az" | "azure" | "abfs" | "abfss" | "adl" => Some(Self::Azure),
            "http" | "https" => Some(Self::Http),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Aws => "aws.",
            Self::Gcp => "gcp.",
            Self::Azure => "azure.",
            Self::Http => "",
        }
    }
}

/// Whether `key` is an object-store option (`aws.*`, `gcp.*`, `google.*`, `azure.*`) rather than
/// a format option, so it can be taken out of a statement's `OPTIONS`.
pub fn is_store_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    CLOUDS.iter().any(|(prefix, _)| key.starts_with(prefix))
}

/// Whether an option's value is a secret, by its name.
fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "key", "token", "password", "sas"].iter().any(|word| key.contains(word)) && !key.ends_with("key_id")
}

/// Store options by lower-case key, as given (`aws.endpoint` → `http://...`).
pub type StoreOptions = BTreeMap<String, String>;

/// The stores of one session: those registered explicitly (local files among them) and those
/// built from URLs on first use.
#[derive(Debug)]
pub struct LakeStores {
    registered: DefaultObjectStoreRegistry,
    session_options: StoreOptions,
    secrets: RwLock<BTreeSet<String>>,
}

impl LakeStores {
    /// Stores configured by `session_options` (every key checked now, so a typo fails at start).
    pub fn new(session_options: StoreOptions) -> Result<Self> {
        let session_options = normalize(session_options)?;
        let stores =
            Self { registered: DefaultObjectStoreRegistry::new(), session_options, secrets: Default::default() };
        stores.remember_secrets(&stores.session_options);
        for name in SECRET_ENV {
            if let Ok(value) = std::env::var(name) {
                stores.remember_secret(value);
            }
        }
        Ok(stores)
    }

    /// Builds the store for `url`'s bucket from the session's options overlaid with `options`
    /// (a table's `OPTIONS`), to be registered for every later use of the bucket.
    pub fn build_with_options(&self, url: &Url, options: StoreOptions) -> Result<Arc<dyn ObjectStore>> {
        let options = normalize(options)?;
        self.remember_secrets(&options);
        let mut merged = self.session_options.clone();
        merged.extend(options);
        build_store(url, &merged)
    }

    /// `text` with every known secret value masked.
    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.read().expect("secrets lock");
        let mut text = text.to_string();
        for secret in secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }

    /// `error` with every known secret value masked.
    pub fn redact_error(&self, error: DataFusionError) -> DataFusionError {
        let text = error.to_string();
        let redacted = self.redact(&text);
        if redacted == text {
            error
        } else {
            DataFusionError::Execution(redacted)
        }
    }

    fn remember_secrets(&self, options: &StoreOptions) {
        for (key, value) in options {
            if is_secret_option(key) {
                self.remember_secret(value.clone());
            }
        }
    }

    fn remember_secret(&self, value: String) {
        // Very short values would mask unrelated text; no real credential is that short.
        if value.len() >= 6 {
            self.secrets.write().expect("secrets lock").insert(value);
        }
    }
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.registered.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.registered.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match self.registered.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if Cloud::of(url).is_some() => {
                let store = build_store(url, &self.session_options)?;
                self.registered.register_store(url, Arc::clone(&store));
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}

/// Lower-cases keys and rejects keys of no cloud.
fn normalize(options: StoreOptions) -> Result<StoreOptions> {
    options
        .into_iter()
        .map(|(key, value)| {
            let key = key.trim().to_ascii_lowercase();
            if is_store_option(&key) {
                Ok((key, value))
            } else {
                Err(DataFusionError::Configuration(format!(
                    "'{key}' is not an object store option: store options start with aws., gcp. or azure. \
                     (for example aws.endpoint or azure.account_name)"
                )))
            }
        })
        .collect()
}

/// The options for `cloud`, with the prefix removed (`aws.endpoint` → `endpoint`).
fn options_for(cloud: Cloud, options: &StoreOptions) -> Vec<(String, String)> {
    options
        .iter()
        .filter_map(|(key, value)| {
            CLOUDS
                .iter()
                .filter(|(_, c)| *c == cloud)
                .find_map(|(prefix, _)| key.strip_prefix(prefix))
                .map(|rest| (rest.to_string(), value.clone()))
        })
        .collect()
}

fn unknown_option(cloud: Cloud, key: &str, scheme: &str) -> DataFusionError {
    DataFusionError::Configuration(format!(
        "unknown option '{}{key}' for {scheme}:// locations; see the object_store configuration keys \
         (for example {}endpoint, {}region) in docs/lakes-and-jobs.md",
        cloud.prefix(),
        cloud.prefix(),
        cloud.prefix(),
    ))
}

fn bad_value(cloud: Cloud, key: &str, why: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Configuration(format!("option '{}{key}': {why}", cloud.prefix()))
}

/// Retry settings from `max_retries` / `retry_timeout`; the rest of the options are returned.
fn retry_config(cloud: Cloud, options: Vec<(String, String)>) -> Result<(RetryConfig, Vec<(String, String)>)> {
    let mut retry = RetryConfig::default();
    let mut rest = Vec::new();
    for (key, value) in options {
        match key.as_str() {
            "max_retries" => {
                retry.max_retries =
                    value.trim().parse().map_err(|_| bad_value(cloud, &key, format!("'{value}' is not a count")))?
            }
            "retry_timeout" => {
                let seconds: f64 = value
                    .trim()
                    .trim_end_matches('s')
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| bad_value(cloud, &key, format!("'{value}' is not a number of seconds")))?;
                retry.retry_timeout = Duration::from_secs_f64(seconds);
            }
            _ => rest.push((key, value)),
        }
    }
    Ok((retry, rest))
}

fn store_error(url: &Url, e: object_store::Error) -> DataFusionError {
    DataFusionError::Configuration(format!(
        "cannot set up the object store for {}://{}: {e}",
        url.scheme(),
        url.authority()
    ))
}

/// Applies `options` to a cloud's store builder through its `with_config`, naming a key the cloud
/// does not know; also says whether `allow_http` was among them.
fn configure<B, K: FromStr>(
    mut builder: B,
    options: Vec<(String, String)>,
    cloud: Cloud,
    scheme: &str,
    with_config: impl Fn(B, K, String) -> B,
) -> Result<(B, bool)> {
    let mut allow_http_given = false;
    for (key, value) in options {
        let config = K::from_str(&key).map_err(|_| unknown_option(cloud, &key, scheme))?;
        allow_http_given |= key.ends_with("allow_http");
        builder = with_config(builder, config, value);
    }
    Ok((builder, allow_http_given))
}

/// Builds the store of `url`'s bucket: the environment's settings, then `options`.
fn build_store(url: &Url, options: &StoreOptions) -> Result<Arc<dyn ObjectStore>> {
    let Some(cloud) = Cloud::of(url) else {
        return Err(DataFusionError::Configuration(format!("no object store for {}:// locations", url.scheme())));
    };
    let (retry, options) = retry_config(cloud, options_for(cloud, options))?;
    let scheme = url.scheme();
    let bucket_url = format!("{}://{}", scheme, url.authority());
    let store: Arc<dyn ObjectStore> = match cloud {
        Cloud::Aws => {
            let builder = AmazonS3Builder::from_env().with_url(&bucket_url);
            let (mut builder, allow_http_given) =
                configure(builder, options, cloud, scheme, |b, k: AmazonS3ConfigKey, v| b.with_config(k, v))?;
            // An endpoint given as http:// (a local S3 server) is meant to be used as given.
            let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_default();
            if !allow_http_given && endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            Arc::new(builder.with_retry(retry).build().map_err(|e| store_error(url, e))?)
        }
        Cloud::Gcp => {
            let builder = GoogleCloudStorageBuilder::from_env().with_url(&bucket_url);
            let (mut builder, allow_http_given) =
                configure(builder, options, cloud, scheme, |b, k: GoogleConfigKey, v| b.with_config(k, v))?;
            let base_url = builder.get_config_value(&GoogleConfigKey::BaseUrl).unwrap_or_default();
            if !allow_http_given && base_url.starts_with("http://") {
                builder = builder.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
            }
            Arc::new(builder.with_retry(retry).build().map_err(|e| store_error(url, e))?)
        }
        Cloud::Azure => {
            let builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            let (mut builder, allow_http_given) =
                configure(builder, options, cloud, scheme, |b, k: AzureConfigKey, v| b.with_config(k, v))?;
            let endpoint = builder.get_config_value(&AzureConfigKey::Endpoint).unwrap_or_default();
            if !allow_http_given && endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            Arc::new(builder.with_retry(retry).build().map_err(|e| store_error(url, e))?)
        }
        Cloud::Http => Arc::new(
            HttpBuilder::new().with_url(&bucket_url).with_retry(retry).build().map_err(|e| store_error(url, e))?,
        ),
    };
    Ok(store)
}

/// A short reason for a failed request to an object store, with the way out, from the store's
/// error text (which names the status and the server's error code).
pub fn explain_store_failure(text: &str) -> Option<&'static str> {
    let has = |needle: &str| text.contains(needle);
    if has("NoSuchBucket") || has("ContainerNotFound") || (has("404") && has("bucket")) {
        Some("the bucket (or container) does not exist: check its name and the endpoint")
    } else if has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
        || has("AccessDenied")
        || has("AuthenticationFailed")
        || has("AuthorizationFailure")
        || has("403 Forbidden")
        || has("401 Unauthorized")
    {
        Some(
            "the credentials were refused: check the cloud's environment variables (AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, GOOGLE_SERVICE_ACCOUNT, AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY) \
             or the table's and session's options",
        )
    } else if has("Connection refused")
        || has("error sending request")
        || has("dns error")
        || has("connection closed")
        || has("timed out")
    {
        Some("the object store did not answer: check the endpoint and the network, then run again")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> StoreOptions {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn store_options_are_told_from_format_options() {
        assert!(is_store_option("aws.endpoint"));
        assert!(is_store_option("AZURE.account_name"));
        assert!(is_store_option("google.service_account_path"));
        assert!(!is_store_option("format.compression"));
        assert!(is_secret_option("aws.secret_access_key"));
        assert!(is_secret_option("azure.access_key"));
        assert!(!is_secret_option("aws.access_key_id"));
        assert!(!is_secret_option("aws.endpoint"));
    }

    #[test]
    fn unknown_keys_fail_naming_the_key() {
        let err = LakeStores::new(options(&[("endpoint", "x")])).unwrap_err().to_string();
        assert!(err.contains("'endpoint' is not an object store option"), "{err}");
        let stores = LakeStores::new(options(&[("aws.endpointt", "http://127.0.0.1:1")])).unwrap();
        let err = stores.get_store(&Url::parse("s3://bucket/x/").unwrap()).unwrap_err().to_string();
        assert!(err.contains("unknown option 'aws.endpointt' for s3:// locations"), "{err}");
        let err = LakeStores::new(options(&[("aws.max_retries", "many")]))
            .unwrap()
            .get_store(&Url::parse("s3://bucket/").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("'aws.max_retries'") && err.contains("'many' is not a count"), "{err}");
    }

    #[test]
    fn stores_are_built_per_bucket_on_first_use() {
        let stores = LakeStores::new(options(&[
            ("aws.endpoint", "http://127.0.0.1:9"),
            ("aws.access_key_id", "AKIDEXAMPLE"),
            ("aws.secret_access_key", "wJalrXUtnFEMIK7MDENG"),
            ("aws.region", "eu-west-1"),
        ]))
        .unwrap();
        let a = stores.get_store(&Url::parse("s3://bucket-a/x/").unwrap()).unwrap();
        let again = stores.get_store(&Url::parse("s3://bucket-a/y/z.parquet").unwrap()).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let b = stores.get_store(&Url::parse("s3://bucket-b/").unwrap()).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(stores.get_store(&Url::parse("ftp://host/x").unwrap()).is_err());
    }

    #[test]
    fn secrets_are_masked() {
        let stores = LakeStores::new(options(&[
            ("aws.access_key_id", "AKIDEXAMPLE"),
            ("aws.secret_access_key", "wJalrXUtnFEMIK7MDENG"),
        ]))
        .unwrap();
        let url = Url::parse("s3://bucket/").unwrap();
        stores.build_with_options(&url, options(&[("azure.access_key", "c2VjcmV0LWtleQ==")])).unwrap();
        assert_eq!(stores.redact("key wJalrXUtnFEMIK7MDENG and c2VjcmV0LWtleQ== here"), "key *** and *** here");
        assert_eq!(stores.redact("nothing secret"), "nothing secret");
    }

    #[test]
    fn failures_are_explained() {
        assert!(explain_store_failure("Client error with status 404 Not Found: <Code>NoSuchBucket</Code>")
            .unwrap()
            .contains("does not exist"));
        assert!(explain_store_failure("<Code>InvalidAccessKeyId</Code>").unwrap().contains("credentials"));
        assert!(explain_store_failure("error sending request: Connection refused").unwrap().contains("did not answer"));
        assert!(explain_store_failure("something else").is_none());
    }
}
