//! What counts as one client, for the login throttle's pairs and the
//! hashing queue's shares alike.

use std::net::{IpAddr, Ipv6Addr};

/// One client: its IPv4 address, or its IPv6 /64 (one subscriber's block);
/// all clients of unknown address count as one.
pub fn client_block(client: Option<IpAddr>) -> IpAddr {
    match client.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}
