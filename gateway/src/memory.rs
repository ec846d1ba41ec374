//! The gateway's upload memory budget: the decoded bytes of every upload being read, together,
//! stay under `limits.max_upload_memory_bytes`.
//!
//! An upload is held in memory once, as its decoded bytes, from its first chunk until it is on
//! disk. Its buffer grows only under a [`MemoryGrant`]: the budget's share is taken before the
//! buffer grows (all of it at once when `Content-Length` tells the size), and given back when
//! the grant is dropped. An upload that cannot get its share within [`SLOT_WAIT`](crate::admission::SLOT_WAIT) is refused
//! with 503, like one that finds no upload slot: the budget bounds memory however large the
//! uploads are, where the slot count alone bounds only their number.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The budget is counted in units of this many bytes.
const UNIT: u64 = 64 * 1024;

/// The memory all uploads share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UploadMemory {
    units: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

impl UploadMemory {
    /// A budget of `bytes`, for which an upload waits at most `wait` ([`SLOT_WAIT`](crate::admission::SLOT_WAIT) in the
    /// service).
    pub fn new(bytes: u64, wait: Duration) -> Self {
        let total_units = u32::try_from(bytes / UNIT)
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    /// An empty grant, to grow as an upload's buffer does.
    pub fn grant(&self) -> MemoryGrant {
        MemoryGrant {
            memory: self.clone(),
            permit: None,
            units: 0,
        }
    }

    /// Bytes of the budget not granted now.
    pub fn available_bytes(&self) -> u64 {
        self.units.available_permits() as u64 * UNIT
    }
}

/// One upload's share of the budget; given back when dropped.
#[derive(Debug)]
pub struct MemoryGrant {
    memory: UploadMemory,
    permit: Option<OwnedSemaphorePermit>,
    units: u32,
}

impl MemoryGrant {
    /// Grows the share to cover `bytes`, waiting a while for other uploads to give some back.
    pub async fn grow_to(&mut self, bytes: usize) -> Result<(), ApiError> {
        let wanted = u32::try_from((bytes as u64).div_ceil(UNIT)).unwrap_or(u32::MAX);
        if wanted <= self.units {
            return Ok(());
        }
        if wanted > self.memory.total_units {
            return Err(ApiError::Overloaded(
                "the upload is larger than the gateway's upload memory",
            ));
        }
        let more = wanted - self.units;
        let permit = tokio::time::timeout(
            self.memory.wait,
            Arc::clone(&self.memory.units).acquire_many_owned(more),
        )
        .await
        .map_err(|_| ApiError::Overloaded("the gateway's upload memory is in use"))?
        .expect("the semaphore is never closed");
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.units = wanted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grants_share_the_budget_and_give_it_back() {
        let wait = Duration::from_millis(50);
        let memory = UploadMemory::new(10 * UNIT, wait);
        let mut first = memory.grant();
        first.grow_to(6 * UNIT as usize).await.unwrap();
        first.grow_to(5 * UNIT as usize).await.unwrap();
        assert_eq!(memory.available_bytes(), 4 * UNIT);
        let mut second = memory.grant();
        second.grow_to(4 * UNIT as usize).await.unwrap();
        let mut third = memory.grant();
        let started = tokio::time::Instant::now();
        assert!(matches!(
            third.grow_to(1).await,
            Err(ApiError::Overloaded(_))
        ));
        assert!(started.elapsed() >= wait);
        drop(first);
        third.grow_to(6 * UNIT as usize).await.unwrap();
        assert!(matches!(
            memory.grant().grow_to(11 * UNIT as usize).await,
            Err(ApiError::Overloaded(_))
        ));
    }
}
