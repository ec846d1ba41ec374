//! The effective configuration as YAML, secrets masked (`gateway --print-config`): what an
//! operator checks when the layers (file, environment, secret files) do not say what they
//! expected.
//!
//! Masked: the API keys (the tenants' too; their names are shown), the callback secret, the S3 access key id and secret, and the
//! password in the queue, store and SMTP URLs (`amqp://user:***@host`). Paths to secret files are
//! shown: they are not secrets.

use serde_json::Value;

use super::Config;

/// What a secret is shown as.
const MASK: &str = "***";

impl Config {
    /// The configuration as YAML, every key, with secrets masked.
    pub fn to_masked_yaml(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        for path in [
            &["callbacks", "secret"][..],
            &["media", "s3", "access_key_id"],
            &["media", "s3", "secret_access_key"],
        ] {
            if let Some(secret) = find(&mut value, path).filter(|secret| !secret.is_null()) {
                *secret = Value::from(MASK);
            }
        }
        if let Some(Value::Array(keys)) = find(&mut value, &["auth", "api_keys"]) {
            keys.iter_mut().for_each(|key| *key = Value::from(MASK));
        }
        if let Some(Value::Object(tenants)) = find(&mut value, &["auth", "tenants"]) {
            for keys in tenants.values_mut() {
                if let Value::Array(keys) = keys {
                    keys.iter_mut().for_each(|key| *key = Value::from(MASK));
                }
            }
        }
        for path in [
            &["queue", "url"],
            &["store", "url"],
            &["media", "url"],
            &["email", "smtp_url"],
        ] {
            if let Some(Value::String(url)) = find(&mut value, path) {
                *url = without_password(url);
            }
        }
        serde_norway::to_string(&value).unwrap_or_default()
    }
}

/// The value at `path`, if every level is there.
fn find<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(value, |value, key| value.as_object_mut()?.get_mut(*key))
}

/// A URL with its password, if any, masked; text that is not a URL is masked whole.
fn without_password(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some(MASK));
            }
            url.to_string()
        }
        Err(_) => MASK.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_is_shown() {
        let config = Config::from_yaml(
            "queue: {url: 'amqp://guest:hunter2@127.0.0.1:5672/%2f'}
store: {url: 'postgres://app:s3cret@db/thumbs'}
media: {url: 's3://bucket', s3: {access_key_id: AKIA1, secret_access_key: wJalr}}
auth: {api_keys: [key-one, key-two], tenants: {acme: [key-acme]}}
callbacks: {secret: whsec_abc}
limits: {max_pixels: 1234}",
        )
        .unwrap();
        let yaml = config.to_masked_yaml();
        for secret in [
            "hunter2",
            "s3cret",
            "AKIA1",
            "wJalr",
            "key-acme",
            "key-one",
            "key-two",
            "whsec_abc",
        ] {
            assert!(!yaml.contains(secret), "{secret} in\n{yaml}");
        }
        for shown in [
            "amqp://guest:***@127.0.0.1:5672/%2f",
            "postgres://app:***@db/thumbs",
            "s3://bucket",
            "max_pixels: 1234",
        ] {
            assert!(yaml.contains(shown), "{shown} not in\n{yaml}");
        }
        // What is printed is a configuration file that loads back.
        let back = Config::from_yaml(&yaml).unwrap();
        assert_eq!(back.limits.max_pixels, 1234);
        assert_eq!(back.auth.api_keys, [MASK, MASK]);
    }
}
