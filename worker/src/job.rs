//! One job, start to finish: read the raw file, make the thumbnail, write it atomically, and
//! say how it went as an [`Outcome`].

use std::io;

use common::config::Config;
use common::files::{DataDir, write_atomic};
use common::message::{Job, Outcome};

use crate::thumbnail;

/// Processes one job. Blocking (file I/O and CPU): run it on a blocking thread.
///
/// Idempotent: processing the same job twice writes the same thumbnail to the same path.
/// Every failure is an [`Outcome::Failed`]: deterministic failures (corrupt image, too many
/// pixels) must end the job, not send it round again.
pub fn process(job: &Job, data: &DataDir, config: &Config) -> Outcome {
    let Some(raw_path) = data.resolve_raw(&job.raw_path) else {
        return failed(400, format!("invalid raw path {:?}", job.raw_path));
    };
    let bytes = match std::fs::read(&raw_path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return failed(410, "the raw file is gone".to_owned());
        }
        Err(error) => return failed(500, format!("cannot read the raw file: {error}")),
    };
    let thumbnail = match thumbnail::make(&bytes, job.media_type, &config.thumbnail, &config.limits)
    {
        Ok(thumbnail) => thumbnail,
        Err(error) => return failed(error.code(), error.to_string()),
    };
    drop(bytes);
    if let Err(error) = write_atomic(&data.thumbnail_path(job.media_id), &thumbnail.bytes) {
        return failed(500, format!("cannot write the thumbnail: {error}"));
    }
    Outcome::Completed {
        width: thumbnail.source_width,
        height: thumbnail.source_height,
        thumbnail: thumbnail.info,
    }
}

fn failed(code: u16, message: String) -> Outcome {
    Outcome::Failed { code, message }
}
