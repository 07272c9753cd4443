//! bcrypt on a bounded blocking pool: a login storm queues here instead of stalling the async
//! workers that serve queue and order requests.

use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashFailed(pub String);

#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    permits: Arc<Semaphore>,
    /// Verified when the user does not exist, so that unknown and known names take equally long;
    /// computed on first use at the configured cost.
    decoy: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    pub fn new(cost: u32, concurrency: usize) -> Self {
        PasswordHasher {
            cost,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            decoy: Arc::new(OnceCell::new()),
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, HashFailed> {
        let cost = self.cost;
        self.run(move || bcrypt::hash(password, cost).map_err(|e| HashFailed(e.to_string())))
            .await
    }

    /// Verifies `password` against `hash`, or against a decoy hash when there is no user.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashFailed> {
        let known = hash.is_some();
        let hash = match hash {
            Some(h) => h,
            None => self
                .decoy
                .get_or_try_init(|| self.hash("decoy-password".to_owned()))
                .await?
                .clone(),
        };
        let ok = self
            .run(move || {
                // A malformed stored hash verifies as false rather than failing the login.
                Ok(bcrypt::verify(password, &hash).unwrap_or(false))
            })
            .await?;
        Ok(known && ok)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, HashFailed> + Send + 'static,
    ) -> Result<T, HashFailed> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashFailed(e.to_string()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| HashFailed(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let h = PasswordHasher::new(4, 2);
        let hash = h.hash("testtest".into()).await.unwrap();
        assert!(
            h.verify("testtest".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!h.verify("testtesx".into(), Some(hash)).await.unwrap());
        assert!(!h.verify("testtest".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn verifies_legacy_bcryptjs_hashes() {
        // bcryptjs wrote `$2a$` hashes into the legacy users table.
        let legacy = bcrypt::hash_with_result("testtest", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoA);
        assert!(legacy.starts_with("$2a$04$"));
        let h = PasswordHasher::new(4, 1);
        assert!(
            h.verify("testtest".into(), Some(legacy.clone()))
                .await
                .unwrap()
        );
        assert!(!h.verify("testtesx".into(), Some(legacy)).await.unwrap());
    }
}
