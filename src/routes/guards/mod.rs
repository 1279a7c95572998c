//! What routes take from a request besides the access token (which is
//! `crate::auth::guard`'s): a JSON body (`json.rs`), a form body
//! (`form.rs`), and the client's address and user agent (`device.rs`).

pub mod device;
pub mod form;
pub mod json;
