//! Loading the configuration in layers, with figment: the defaults, then the YAML file, then
//! the environment, then the secrets kept in files.
//!
//! - **Environment**: every key, as `THUMBNAILIFY_` and its path in capitals with `__`
//!   between levels: `THUMBNAILIFY_LIMITS__MAX_PIXELS=50000000`,
//!   `THUMBNAILIFY_THUMBNAIL__FORMAT=webp`, `THUMBNAILIFY_AUTH__API_KEYS=[k1,k2]`. A value
//!   that opens with `{` or `[` is YAML (or JSON, which is YAML), so that maps and lists
//!   are written as in the file: `THUMBNAILIFY_THUMBNAIL__PRESETS='{card: {size: 400x300}}'`.
//!   Other values are read as figment reads them (numbers, `true`/`false`; a string that
//!   looks like a number is written in double quotes). A variable whose first level is not a
//!   configuration key (`THUMBNAILIFY_TEST_DATABASE_URL`) is not configuration and is left
//!   alone; a misspelt key under a known one (`THUMBNAILIFY_LIMITS__MAX_PIXLES`) is refused,
//!   as it is in the file. `THUMBNAILIFY_QUEUE_URL`, `THUMBNAILIFY_STORE_URL` and
//!   `THUMBNAILIFY_MEDIA_URL` are kept as other names of `queue.url`, `store.url` and
//!   `media.url`; an empty URL means unset.
//! - **Platform variables**: `DATABASE_URL` when `store.url` is unset, and the AWS tools'
//!   `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_ALLOW_HTTP` for the `media.s3` settings the layers above leave unset.
//! - **Secrets in files**: `queue.url_file`, `store.url_file`, `email.smtp_url_file`,
//!   `media.s3.access_key_id_file` and `media.s3.secret_access_key_file` name a file (a mounted secret) whose content,
//!   less its trailing newline, is the key's value; `callbacks.secret_file` and
//!   `auth.api_keys_file` are read by the gateway. Setting a key and its file together is
//!   refused.

use std::path::{Path, PathBuf};

use figment::providers::Env;
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};

use super::{Config, ConfigError};

/// The prefix of the variables that set configuration keys.
const PREFIX: &str = "THUMBNAILIFY_";

/// Other names kept for three keys: the variable's name after the prefix, and the key path.
const ALIASES: [(&str, &str); 3] = [
    ("queue_url", "queue.url"),
    ("store_url", "store.url"),
    ("media_url", "media.url"),
];

impl Config {
    /// Loads the configuration: the file at `path` if given, else `config.yaml` in the working
    /// directory if present, else the defaults; then the environment and the secret files
    /// (see the module documentation). Checked with [`Config::validate`].
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let default_path = Path::new("config.yaml");
        let path = path.or_else(|| default_path.exists().then_some(default_path));
        let mut figment = Figment::new();
        if let Some(path) = path {
            figment = figment.merge(YamlFile::read(path)?);
        }
        let mut config: Config = environment(figment)
            .extract()
            .map_err(|error| ConfigError::Layers(Box::new(error)))?;
        config.unset_empty_urls();
        config.apply_env(|name| std::env::var(name).ok());
        config.read_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    /// Applies the platform variables (`DATABASE_URL`, `AWS_*`) to the keys still unset,
    /// reading variables through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if self.store.url.is_none() && self.store.url_file.is_none() {
            self.store.url = var("DATABASE_URL").filter(|url| !url.is_empty());
        }
        let s3 = &mut self.media.s3;
        for (field, file, name) in [
            (&mut s3.endpoint, None, "AWS_ENDPOINT_URL"),
            (&mut s3.region, None, "AWS_REGION"),
            (
                &mut s3.access_key_id,
                s3.access_key_id_file.as_ref(),
                "AWS_ACCESS_KEY_ID",
            ),
            (
                &mut s3.secret_access_key,
                s3.secret_access_key_file.as_ref(),
                "AWS_SECRET_ACCESS_KEY",
            ),
        ] {
            if field.is_none() && file.is_none() {
                *field = var(name).filter(|value| !value.is_empty());
            }
        }
        if let Some(allow) = var("AWS_ALLOW_HTTP") {
            s3.allow_http |= allow.eq_ignore_ascii_case("true") || allow == "1";
        }
    }

    /// An empty URL from any layer means the key is unset (the embedded back-end).
    fn unset_empty_urls(&mut self) {
        for url in [
            &mut self.queue.url,
            &mut self.store.url,
            &mut self.media.url,
        ] {
            if url.as_deref() == Some("") {
                *url = None;
            }
        }
    }

    /// Reads the secrets kept in files into their keys.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        let s3 = &mut self.media.s3;
        for (value, file, key) in [
            (&mut self.queue.url, &self.queue.url_file, "queue.url"),
            (
                &mut self.email.smtp_url,
                &self.email.smtp_url_file,
                "email.smtp_url",
            ),
            (&mut self.store.url, &self.store.url_file, "store.url"),
            (
                &mut s3.access_key_id,
                &s3.access_key_id_file,
                "media.s3.access_key_id",
            ),
            (
                &mut s3.secret_access_key,
                &s3.secret_access_key_file,
                "media.s3.secret_access_key",
            ),
        ] {
            let Some(path) = file else { continue };
            if value.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "{key} and {key}_file are both set: set one"
                )));
            }
            *value = Some(read_secret(path)?);
        }
        Ok(())
    }
}

/// A secret file's content, less the line ending an editor or `echo` leaves.
fn read_secret(path: &PathBuf) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// `figment` with the `THUMBNAILIFY_*` variables that name configuration keys merged over it.
fn environment(figment: Figment) -> Figment {
    figment.merge(Environment(variables()))
}

/// The `THUMBNAILIFY_*` variables as a figment layer: each at its key's path, its value read
/// by [`value_of`]; errors name the variable, as figment's own `Env` does.
struct Environment(Env);

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("`{PREFIX}` environment variable(s)")).interpolater(
            |_: &Profile, keys: &[&str]| {
                keys.iter()
                    .map(|key| key.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(".")
            },
        )
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, text) in self.0.iter() {
            if let figment::value::Value::Dict(_, nested) =
                figment::util::nest(key.as_str(), value_of(&text))
            {
                merge(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Merges `from` into `into`, key by key, maps within maps; a later value wins.
fn merge(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (
                Some(figment::value::Value::Dict(_, inner)),
                figment::value::Value::Dict(_, nested),
            ) => merge(inner, nested),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// A variable's value: YAML when it opens a map or a list (JSON is YAML too), else what
/// figment reads (numbers, booleans, strings).
fn value_of(text: &str) -> figment::value::Value {
    if text.trim_start().starts_with(['{', '['])
        && let Ok(value) = serde_norway::from_str::<figment::value::Value>(text)
    {
        return value;
    }
    text.parse().unwrap_or_else(|never| match never {})
}

/// The `THUMBNAILIFY_*` variables that name configuration keys.
fn variables() -> Env {
    let top_level: Vec<String> = match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(keys)) => keys.keys().cloned().collect(),
        _ => Vec::new(),
    };
    Env::prefixed(PREFIX).filter_map(move |name| {
        let name = name.as_str().to_ascii_lowercase();
        if let Some((_, key)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
            return Some((*key).into());
        }
        let first = name.split("__").next()?;
        top_level
            .iter()
            .any(|key| key == first)
            .then(|| name.replace("__", ".").into())
    })
}

/// A YAML configuration file as a figment layer, named by its path in errors.
struct YamlFile {
    path: PathBuf,
    values: Dict,
}

impl YamlFile {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let values = if text.trim().is_empty() {
            Dict::new()
        } else {
            serde_norway::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source,
            })?
        };
        Ok(Self {
            path: path.to_owned(),
            values,
        })
    }
}

impl Provider for YamlFile {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("file {}", self.path.display())).source(self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

#[cfg(test)]
// figment's `Jail` closures return figment's own `Result`, whose error is large.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;
    use crate::config::OutputFormat;

    /// The configuration, or its error in lower case (figment names environment keys in
    /// capitals).
    fn load() -> Result<Config, String> {
        Config::load(None).map_err(|error| error.to_string().to_lowercase())
    }

    #[test]
    fn the_environment_overrides_the_file_at_any_depth() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "config.yaml",
                "listen: 127.0.0.1:1\nlimits: {max_pixels: 10, max_variants: 3}",
            )?;
            jail.set_env("THUMBNAILIFY_LIMITS__MAX_PIXELS", "50000000");
            jail.set_env("THUMBNAILIFY_THUMBNAIL__FORMAT", "webp");
            jail.set_env("THUMBNAILIFY_AUTH__API_KEYS", "[key-one, key-two]");
            jail.set_env("THUMBNAILIFY_VIDEO__FFMPEG", "/opt/ffmpeg/bin/ffmpeg");
            jail.set_env("THUMBNAILIFY_LISTEN", "127.0.0.1:9");
            jail.set_env("THUMBNAILIFY_QUEUE_URL", "amqp://127.0.0.1:5672");
            // Not configuration: other tools' variables under the same prefix.
            jail.set_env("THUMBNAILIFY_TEST_DATABASE_URL", "postgres://elsewhere/x");
            let config = load()?;
            assert_eq!(config.limits.max_pixels, 50_000_000);
            assert_eq!(config.limits.max_variants, 3, "the file's other keys stay");
            assert_eq!(config.thumbnail.format, OutputFormat::Webp);
            assert_eq!(config.auth.api_keys, ["key-one", "key-two"]);
            assert_eq!(config.video.ffmpeg, PathBuf::from("/opt/ffmpeg/bin/ffmpeg"));
            assert_eq!(config.listen, "127.0.0.1:9");
            assert_eq!(config.queue.url.as_deref(), Some("amqp://127.0.0.1:5672"));
            assert_eq!(config.store.url, None);

            // Maps and lists as YAML or JSON, as in the file.
            jail.set_env(
                "THUMBNAILIFY_THUMBNAIL__PRESETS",
                "{card: {size: 400x300, fit: cover}, hero: {size: 1600x}}",
            );
            jail.set_env("THUMBNAILIFY_AUTH__TENANTS", r#"{"acme": ["k1", "k2"]}"#);
            jail.set_env("THUMBNAILIFY_SOURCES__ALLOWED_HOSTS", "[127.0.0.1, ::1]");
            let config = load()?;
            assert_eq!(config.thumbnail.presets.len(), 2);
            let card = &config.thumbnail.presets["card"];
            assert_eq!(card.size.to_string(), "400x300");
            assert_eq!(card.fit, Some(crate::variant::Fit::Cover));
            assert_eq!(config.auth.tenants["acme"], ["k1", "k2"]);
            assert_eq!(config.sources.allowed_hosts, ["127.0.0.1", "::1"]);

            jail.set_env("THUMBNAILIFY_QUEUE__URL", "");
            jail.set_env("THUMBNAILIFY_QUEUE_URL", "");
            assert_eq!(load()?.queue.url, None, "an empty URL is unset");
            Ok(())
        });
    }

    #[test]
    fn misspelt_keys_and_bad_values_are_refused_naming_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("THUMBNAILIFY_LIMITS__MAX_PIXLES", "1");
            let error = load().unwrap_err();
            assert!(error.contains("max_pixles"), "{error}");
            jail.clear_env();
            jail.set_env("THUMBNAILIFY_LIMITS__MAX_PIXELS", "lots");
            let error = load().unwrap_err();
            assert!(error.contains("limits.max_pixels"), "{error}");
            jail.clear_env();
            jail.set_env("THUMBNAILIFY_THUMBNAIL__JPEG_QUALITY", "0");
            let error = load().unwrap_err();
            assert!(error.contains("jpeg_quality"), "{error}");
            jail.clear_env();
            jail.create_file("config.yaml", "limits: {max_pixels: [1]}")?;
            let error = load().unwrap_err();
            assert!(error.contains("max_pixels"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn secrets_come_from_files() {
        Jail::expect_with(|jail| {
            jail.create_file("database-url", "postgres://app:s3cret@db/thumbs\n")?;
            jail.create_file("s3-secret", "wJalrXUtnFEMI\r\n")?;
            jail.create_file(
                "config.yaml",
                "media: {s3: {secret_access_key_file: s3-secret}}",
            )?;
            jail.set_env("THUMBNAILIFY_STORE__URL_FILE", "database-url");
            jail.set_env("AWS_SECRET_ACCESS_KEY", "not this one");
            let config = load()?;
            assert_eq!(
                config.store.url.as_deref(),
                Some("postgres://app:s3cret@db/thumbs")
            );
            assert_eq!(
                config.media.s3.secret_access_key.as_deref(),
                Some("wJalrXUtnFEMI")
            );

            jail.set_env("THUMBNAILIFY_STORE__URL", "postgres://other/db");
            let error = load().unwrap_err();
            assert!(error.contains("store.url and store.url_file"), "{error}");
            jail.clear_env();
            jail.set_env("THUMBNAILIFY_QUEUE__URL_FILE", "missing");
            let error = load().unwrap_err();
            assert!(error.contains("missing"), "{error}");
            Ok(())
        });
    }
}
