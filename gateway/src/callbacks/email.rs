//! Mail: the final record sent to an address, through the SMTP server `email.smtp_url`
//! names (lettre), with its first thumbnail attached and a link to the record.
//!
//! Only to the domains `email.allowed_domains` lists: an upload naming another address is
//! refused at the door ([`check_address`], 400 `email_not_allowed`), so the service never
//! relays mail to whomever a client names. The message says only what the record says,
//! never what the upload's bytes held; the subject and the attachment's name come from the
//! record's id, not from the client's file name.
//!
//! A reply of 4xx from the server, a timeout or a connection that fails is tried again (as
//! callbacks are, with backoff); a 5xx reply fails the mail at once. The SMTP server's reply
//! code is kept in the record.

use std::time::Duration;

use common::config::Config;
use common::media::MediaType;
use common::record::{Record, State, VariantState};
use common::storage::{Key, Storage};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Attempt, CallbackError};

/// `text` as an address mail may go to: a valid address whose domain is one of `allowed`
/// (without case). The reasons never repeat the text.
pub fn check_address(text: &str, allowed: &[String]) -> Result<String, String> {
    let address: Address = text
        .trim()
        .parse()
        .map_err(|_| "not an email address".to_owned())?;
    if allowed.is_empty() {
        return Err("mail may go to no domain: email.allowed_domains is empty".to_owned());
    }
    let domain = address.domain();
    if !allowed.iter().any(|allowed| {
        allowed
            .trim()
            .trim_start_matches('@')
            .eq_ignore_ascii_case(domain)
    }) {
        return Err("its domain is not one of email.allowed_domains".to_owned());
    }
    Ok(address.to_string())
}

/// Sends records' mail.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where recipients reach the service, without a trailing `/`.
    public_url: String,
    storage: Storage,
}

impl Mailer {
    /// The mailer `config.email` describes, reading thumbnails from `storage`; `None` when
    /// mail is off (no `email.smtp_url`).
    pub fn new(config: &Config, storage: Storage) -> Result<Option<Self>, CallbackError> {
        let Some(url) = &config.email.smtp_url else {
            return Ok(None);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| CallbackError::Email(format!("email.smtp_url: {error}")))?
            .timeout(Some(Duration::from_secs(config.email.timeout_secs)))
            .build();
        let from = config
            .email
            .from
            .parse()
            .map_err(|_| CallbackError::Email("email.from is not an address".to_owned()))?;
        let public_url = config
            .email
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        Ok(Some(Self {
            transport,
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
            storage,
        }))
    }

    /// Sends `record`'s mail to `to`.
    pub(super) async fn attempt(&self, to: &str, record: &Record) -> Attempt {
        let to: Mailbox = match to.parse() {
            Ok(to) => to,
            Err(_) => return Attempt::Failed(None, "not an email address".to_owned()),
        };
        let attachment = match self.attachment(record).await {
            Ok(attachment) => attachment,
            Err(reason) => return Attempt::Retry(None, reason),
        };
        let message = match self.message(to, record, attachment) {
            Ok(message) => message,
            Err(error) => return Attempt::Failed(None, format!("cannot write the mail: {error}")),
        };
        match self.transport.send(message).await {
            Ok(response) => Attempt::Delivered(u16::from(response.code())),
            Err(error) => {
                let code = error.status().map(u16::from);
                let reason = describe(&error);
                if error.is_permanent() {
                    Attempt::Failed(code, reason)
                } else {
                    Attempt::Retry(code, reason)
                }
            }
        }
    }

    /// The first thumbnail made, its bytes and media type, if the record has one.
    async fn attachment(&self, record: &Record) -> Result<Option<(Vec<u8>, MediaType)>, String> {
        if record.state != State::Completed {
            return Ok(None);
        }
        let Some((index, media_type)) =
            record
                .thumbnails
                .iter()
                .enumerate()
                .find_map(|(index, thumbnail)| {
                    (thumbnail.state == VariantState::Ready)
                        .then_some(thumbnail.media_type)
                        .flatten()
                        .map(|media_type| (index, media_type))
                })
        else {
            return Ok(None);
        };
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        match self.storage.get(Key::variant(record.media_id, index)).await {
            Ok(Some(bytes)) => Ok(Some((bytes.to_vec(), media_type))),
            Ok(None) => Ok(None),
            Err(error) => Err(format!("cannot read the thumbnail: {error}")),
        }
    }

    /// The message: a plain text part saying how the record ended, with its link, and the
    /// thumbnail attached.
    fn message(
        &self,
        to: Mailbox,
        record: &Record,
        attachment: Option<(Vec<u8>, MediaType)>,
    ) -> Result<Message, lettre::error::Error> {
        let link = format!("{}/images/{}", self.public_url, record.media_id);
        let (subject, text) = match record.state {
            State::Completed => (
                format!("Thumbnail ready: {}", record.media_id),
                format!(
                    "The thumbnails of {} are ready{}.\n\nThe record: {link}\n",
                    record.media_id,
                    if attachment.is_some() {
                        "; the first is attached"
                    } else {
                        ""
                    }
                ),
            ),
            _ => (
                format!("Thumbnail failed: {}", record.media_id),
                format!(
                    "{} could not be thumbnailed ({}): {}\n\nThe record: {link}\n",
                    record.media_id, record.code, record.message
                ),
            ),
        };
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{}@thumbnailify>", record.media_id.simple())));
        let text = SinglePart::plain(text);
        match attachment {
            None => builder.singlepart(text),
            Some((bytes, media_type)) => {
                let extension = media_type.as_str().rsplit('/').next().unwrap_or("bin");
                let name = format!("{}.{extension}", record.media_id);
                let content_type = ContentType::parse(media_type.as_str()).unwrap_or(
                    ContentType::parse("application/octet-stream").expect("a media type"),
                );
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(text)
                        .singlepart(Attachment::new(name).body(bytes, content_type)),
                )
            }
        }
    }
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// An SMTP error and its causes, as one line.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let first = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    super::with_causes(first, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_of_allowed_domains_pass() {
        let allowed = vec!["example.org".to_owned(), "@Mail.Example.COM".to_owned()];
        assert_eq!(
            check_address(" ada@example.org ", &allowed),
            Ok("ada@example.org".to_owned())
        );
        assert!(check_address("ada@mail.example.com", &allowed).is_ok());
        assert!(check_address("ADA@EXAMPLE.ORG", &allowed).is_ok());
        for refused in [
            "ada@example.net",
            "ada@sub.example.org",
            "ada@example.org.evil.net",
            "not an address",
            "a@b@example.org",
            "",
        ] {
            let reason = check_address(refused, &allowed).unwrap_err();
            assert!(refused.is_empty() || !reason.contains(refused), "{reason}");
        }
        assert!(
            check_address("ada@example.org", &[]).is_err(),
            "no domain: none"
        );
    }
}
