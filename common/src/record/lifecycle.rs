//! How a record changes: made from an upload or a source, through its job's results, to
//! its final state once; variants added on demand; retried or discarded as a dead letter.

use uuid::Uuid;

use crate::message::{Job, Made, Source};
use crate::time::now_rfc3339;
use crate::variant::Variant;

use super::*;

impl Record {
    /// A fresh record in [`State::Processing`], held by the gateway.
    pub fn new(upload: NewUpload) -> Self {
        let now = now_rfc3339();
        Self {
            media_id: upload.media_id,
            media_type: upload.media_type,
            source_url: None,
            original: None,
            duplicate_of: None,
            tenant: None,
            name: upload.name,
            service: Service::Gateway,
            state: State::Processing,
            message: "queued, waiting for a worker".to_owned(),
            code: CODE_PROCESSING,
            size: upload.size,
            md5: upload.md5,
            sha256: upload.sha256,
            width: upload.dimensions.map(|(w, _)| w),
            height: upload.dimensions.map(|(_, h)| h),
            duration: None,
            video: None,
            placeholder: None,
            created_at: now.clone(),
            updated_at: now,
            thumbnail: None,
            thumbnails: upload
                .variants
                .into_iter()
                .map(|variant| Thumbnail::requested(upload.media_id, variant))
                .collect(),
            callback: upload.callback_url.map(|url| Callback {
                url,
                state: CallbackState::Pending,
                attempts: 0,
                last_status: None,
                last_error: None,
                next_attempt_at: None,
            }),
            email: upload.notify_email.map(Email::to),
            attempts: 1,
            dead_letter: false,
            traceparent: None,
            events: vec![Event::new("accepted", Service::Gateway, None)],
        }
    }

    /// Whether its raw upload is still needed: it has work left, or it is a dead letter that
    /// may be retried.
    pub fn needs_raw(&self) -> bool {
        self.needs_work() || self.dead_letter
    }

    /// Marks a record failed without a worker's answer as a dead letter (see
    /// [`Record::dead_letter`]).
    pub fn give_up(&mut self, code: u16, message: &str) -> bool {
        if self.is_final() {
            return false;
        }
        self.fail(code, message);
        self.dead_letter = true;
        self.updated_at = now_rfc3339();
        self.push_event(Event::new(
            "dead_lettered",
            Service::Gateway,
            Some(message.to_owned()),
        ));
        true
    }

    /// Queues a dead letter again, as an operator asks: processing, its failed variants asked
    /// for again, a fresh count of attempts. Returns whether it was a dead letter.
    pub fn retry(&mut self) -> bool {
        if !self.dead_letter {
            return false;
        }
        self.dead_letter = false;
        self.state = State::Processing;
        self.service = Service::Gateway;
        self.code = CODE_PROCESSING;
        self.message = "queued again by an operator".to_owned();
        self.thumbnail = None;
        self.attempts = 1;
        if let Some(callback) = &mut self.callback {
            // The client hears of the new outcome too.
            callback.state = CallbackState::Pending;
            callback.attempts = 0;
            callback.last_status = None;
            callback.last_error = None;
            callback.next_attempt_at = None;
        }
        if let Some(email) = &mut self.email {
            *email = Email::to(std::mem::take(&mut email.to));
        }
        for entry in &mut self.thumbnails {
            if entry.state == VariantState::Failed {
                entry.state = VariantState::Processing;
                entry.error = None;
            }
        }
        self.updated_at = now_rfc3339();
        self.push_event(Event::new("retried", Service::Gateway, None));
        true
    }

    /// Closes a dead letter for good: it stays failed and its raw upload may go. Returns
    /// whether it was a dead letter.
    pub fn discard(&mut self) -> bool {
        if !self.dead_letter {
            return false;
        }
        self.dead_letter = false;
        self.updated_at = now_rfc3339();
        self.push_event(Event::new("discarded", Service::Gateway, None));
        true
    }

    /// Whether the record has reached a final state.
    pub fn is_final(&self) -> bool {
        self.state != State::Processing
    }

    /// Whether some work is still to be done: the job, or a variant asked for on demand.
    pub fn needs_work(&self) -> bool {
        !self.is_final()
            || self
                .thumbnails
                .iter()
                .any(|t| t.state == VariantState::Processing)
    }

    /// The job that does what is left: every variant while the record is processing, the
    /// variants still processing once it is final. A record from before variants existed
    /// makes the configured default (an empty list).
    pub fn job(&self) -> Job {
        let variants = self
            .thumbnails
            .iter()
            .enumerate()
            .filter(|(_, t)| !self.is_final() || t.state == VariantState::Processing)
            .map(|(index, t)| crate::message::JobVariant {
                index: u16::try_from(index).unwrap_or(u16::MAX),
                variant: t.request.clone(),
            })
            .collect();
        Job {
            media_id: self.media_id,
            media_type: self.media_type,
            source_url: self
                .media_type
                .is_none()
                .then(|| self.source_url.clone())
                .flatten(),
            raw_path: crate::files::raw_relative_path(self.raw_id()),
            variants,
            traceparent: self.traceparent.clone(),
        }
    }

    /// The id its original is stored under: the content id, else its own media id.
    pub fn raw_id(&self) -> Uuid {
        self.original.unwrap_or(self.media_id)
    }

    /// Whether `other` asks for exactly the same variants.
    pub fn asks_as(&self, other: &Record) -> bool {
        self.thumbnails.len() == other.thumbnails.len()
            && self
                .thumbnails
                .iter()
                .zip(&other.thumbnails)
                .all(|(mine, theirs)| mine.request == theirs.request)
    }

    /// Completes this record from `canonical`, a completed record of the same bytes and
    /// variants whose thumbnails were copied to this record's keys.
    pub fn complete_from(&mut self, canonical: &Record) {
        self.state = State::Completed;
        self.code = canonical.code;
        self.width = canonical.width;
        self.height = canonical.height;
        self.duration = canonical.duration;
        self.video.clone_from(&canonical.video);
        self.placeholder.clone_from(&canonical.placeholder);
        self.thumbnail = canonical.thumbnail.clone();
        for (mine, theirs) in self.thumbnails.iter_mut().zip(&canonical.thumbnails) {
            let url = std::mem::take(&mut mine.url);
            *mine = theirs.clone();
            mine.url = url;
        }
        self.duplicate_of = Some(canonical.media_id);
        self.message = format!(
            "deduplicated: the same bytes and variants as {}",
            canonical.media_id
        );
        self.updated_at = now_rfc3339();
    }

    /// A fresh record for a source to fetch from `url`: no bytes, media type or digests yet,
    /// `message: "fetching"`; its job has the worker fetch it first.
    pub fn fetching(
        media_id: Uuid,
        url: String,
        name: Option<String>,
        variants: Vec<Variant>,
        callback_url: Option<String>,
        notify_email: Option<String>,
    ) -> Self {
        let mut record = Self::new(NewUpload {
            media_id,
            media_type: None,
            name,
            size: 0,
            md5: String::new(),
            sha256: String::new(),
            dimensions: None,
            variants,
            callback_url,
            notify_email,
        });
        record.source_url = Some(url);
        record.message = "fetching".to_owned();
        record
    }

    /// Takes what a fetched source turned out to be.
    pub fn apply_source(&mut self, source: &Source) {
        self.media_type = Some(source.media_type);
        self.size = source.size;
        self.md5.clone_from(&source.md5);
        self.sha256.clone_from(&source.sha256);
    }

    /// When the first of its deliveries (the callback, the mail) is due, if one is: once
    /// the record is final, while a delivery is pending (at once, or at the time of its next
    /// attempt). The store indexes this one time for both.
    pub fn callback_due(&self) -> Option<String> {
        [self.webhook_due(), self.email_due()]
            .into_iter()
            .flatten()
            .min_by_key(|due| humantime::parse_rfc3339(due).ok())
    }

    /// When the completion callback (webhook) is due, if it is.
    pub fn webhook_due(&self) -> Option<String> {
        let callback = self.callback.as_ref()?;
        self.due(callback.state, callback.next_attempt_at.as_ref())
    }

    /// When the mail is due, if it is.
    pub fn email_due(&self) -> Option<String> {
        let email = self.email.as_ref()?;
        self.due(email.state, email.next_attempt_at.as_ref())
    }

    /// When a delivery in `state`, next tried at `next`, is due.
    fn due(&self, state: CallbackState, next: Option<&String>) -> Option<String> {
        (self.is_final() && state == CallbackState::Pending)
            .then(|| next.cloned().unwrap_or_else(|| self.updated_at.clone()))
    }

    /// Adds an event to the history (keeping the first and the latest when it is long).
    pub fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(1);
        }
        self.events.push(event);
    }

    /// Whether variant `index` was made (and its object is needed). A record from before
    /// variants existed has its one thumbnail as variant 0.
    pub fn has_made(&self, index: u16) -> bool {
        match self.thumbnails.get(usize::from(index)) {
            Some(entry) => entry.state == VariantState::Ready,
            None => self.thumbnails.is_empty() && index == 0 && self.thumbnail.is_some(),
        }
    }

    /// The record as the API shows it: without its history and its tenant.
    pub fn public(mut self) -> Self {
        self.events = Vec::new();
        self.tenant = None;
        self
    }

    /// Applies the variants a worker made. A processing record becomes completed, with the
    /// first variant as `thumbnail`; in a final record, only variants still processing (asked
    /// for on demand) change. Returns whether anything changed.
    pub fn apply_made(&mut self, made: &[Made], width: u32, height: u32) -> bool {
        let (mut changed, is_final) = (false, self.is_final());
        for made in made {
            let Some(entry) = self.thumbnails.get_mut(usize::from(made.index)) else {
                continue;
            };
            if entry.name != made.name || (is_final && entry.state != VariantState::Processing) {
                continue;
            }
            match (&made.info, &made.error) {
                (Some(info), _) => {
                    entry.state = VariantState::Ready;
                    entry.width = Some(info.width);
                    entry.height = Some(info.height);
                    entry.media_type = Some(info.media_type);
                    entry.size = Some(info.size);
                    entry.frames = info.frames;
                    entry.error = None;
                }
                (None, Some(error)) => {
                    entry.state = VariantState::Failed;
                    entry.error = Some(error.clone());
                }
                (None, None) => continue,
            }
            changed = true;
        }
        if !self.is_final() {
            self.state = State::Completed;
            self.code = CODE_COMPLETED;
            self.message = "thumbnail ready".to_owned();
            self.width = Some(width);
            self.height = Some(height);
            self.thumbnail = self.thumbnails.first().and_then(Thumbnail::info);
            changed = true;
        }
        changed
    }

    /// Records a failure of the job: a processing record becomes `Error`; in a final record,
    /// the variants still processing fail. Returns whether anything changed.
    pub fn fail(&mut self, code: u16, message: &str) -> bool {
        let mut changed = false;
        for entry in &mut self.thumbnails {
            if entry.state == VariantState::Processing {
                entry.state = VariantState::Failed;
                entry.error = Some(VariantFailure::new(code, message.to_owned()));
                changed = true;
            }
        }
        if !self.is_final() {
            self.state = State::Error;
            self.code = code;
            self.message = message.to_owned();
            changed = true;
        }
        changed
    }
}
