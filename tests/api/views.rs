//! The DBA views `active_revocations` and `active_sessions`, on both
//! backends: their rows after logins and a logout.

use rocket::http::Status;

use crate::backend_tests;
use crate::helpers::{claim, Backend, TestApp};

async fn the_views_show_what_is_in_force_with_usernames(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gone = app.signup("alice").await;
    let kept = app.login_ok("alice").await;
    app.signup("bob").await;
    assert_eq!(app.logout(&gone.access).await.status, Status::Ok);
    // Rotation lists the used-up refresh token, which the view leaves out.
    assert_eq!(app.refresh(&kept.refresh).await.status, Status::Ok);

    assert_eq!(
        app.db.count("SELECT count(*) FROM active_sessions").await,
        2,
        "alice's kept session and bob's"
    );
    let kept_sid = claim(&kept.access, "sid");
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT count(*) FROM active_sessions WHERE id = '{kept_sid}' AND username = 'alice'"
            ))
            .await,
        1
    );
    let gone_sid = claim(&gone.access, "sid");
    assert_eq!(
        app.db.count(&format!("SELECT count(*) FROM active_sessions WHERE id = '{gone_sid}'")).await,
        0
    );

    assert_eq!(
        app.db.count("SELECT count(*) FROM active_revocations").await,
        1,
        "the logged-out session, which refuses its tokens"
    );
    let by_kind = format!(
        "SELECT count(*) FROM active_revocations WHERE username = 'alice' AND reason = 'logout'
           AND jti = '{gone_sid}' AND kind = 'session'"
    );
    assert_eq!(app.db.count(&by_kind).await, 1);

    // A hand-made revocation of a session shows in both views at once.
    app.db.revoke_by_hand(&kept_sid, "2099-01-01T00:00:00Z").await;
    assert_eq!(
        app.db.count(&format!("SELECT count(*) FROM active_sessions WHERE id = '{kept_sid}'")).await,
        0
    );
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT count(*) FROM active_revocations WHERE jti = '{kept_sid}' AND reason = 'manual'"
            ))
            .await,
        1
    );
}

backend_tests!(the_views_show_what_is_in_force_with_usernames);
