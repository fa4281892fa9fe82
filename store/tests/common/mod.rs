//! Shared by the store's test files: a store that seals to a throwaway identity.

use std::sync::Arc;

use dmarcpipe_store::Store;
use dmarcpipe_store::seal::{self, Opener, Sealer};
use sqlx::PgPool;

/// A store sealing to a new identity, and the opener of that identity.
pub fn sealing_store(pool: &PgPool) -> (Store, Arc<Opener>) {
    let (identity, recipient) = seal::generate_identity();
    let sealer = Sealer::new(&[recipient], "test", &[]).expect("a sealer");
    let opener = Opener::from_identity_text(&identity, "test identity").expect("an opener");
    (Store::from_pool(pool.clone()).with_sealer(Some(sealer)), Arc::new(opener))
}
