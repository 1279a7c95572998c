//! The migrations are embedded at compile time (`sqlx::migrate!`): rebuild
//! when one is added or changed, which cargo would not notice otherwise.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
