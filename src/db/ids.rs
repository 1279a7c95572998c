//! Ids the compiler tells apart: a user's, a session's (the tokens' `sid`)
//! and a token's (its `jti`), all UUIDs underneath. A function that takes a
//! [`UserId`] and a [`SessionId`] cannot be handed them the other way round.
//!
//! On Postgres they are `uuid` columns (sqlx's transparent encoding); on
//! SQLite, canonical lowercase text, which [`Display`](std::fmt::Display)
//! writes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id (UUID v4).
            pub fn new_v4() -> Self {
                $name(Uuid::new_v4())
            }
        }

        /// The canonical lowercase hyphenated form.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map($name)
            }
        }
    )*};
}

ids! {
    /// A user (`users.id`, the tokens' `sub`).
    UserId;
    /// A session (`sessions.id`, the `sid` of every token of one login).
    SessionId;
    /// A token (its `jti`).
    TokenId;
}
