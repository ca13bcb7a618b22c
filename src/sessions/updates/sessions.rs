//! Session subscriptions (`resources/subscribe` in a 2025-11-25 session): kept in Redis, per
//! tenant and resource key, so the replica holding the session's GET stream finds them whichever
//! replica took the subscribe; in memory when there is no Redis.

use super::{ResourceUpdates, Update};

impl ResourceUpdates {
    fn set_key(&self, tenant: &str, key: &str) -> String {
        format!("{}subs:{tenant}:{key}", self.prefix)
    }

    fn session_index(&self, session: &str) -> String {
        format!("{}session-subs:{session}", self.prefix)
    }

    /// `resources/subscribe` in a session; kept in Redis so the replica holding the session's
    /// GET stream sees it whichever replica took the request.
    pub async fn subscribe_session(&self, tenant: &str, session: &str, key: &str, uri: &str) {
        let member = format!("{session}\n{uri}");
        if !self.is_shared() {
            let mut local = self.local.lock().expect("subscriber map lock");
            local.sessions.entry((tenant.into(), key.into())).or_default().insert((session.into(), uri.into()));
            return;
        }
        let (set, index) = (self.set_key(tenant, key), self.session_index(session));
        let ttl = self.ttl.as_secs().max(1) as i64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .sadd(&set, &member)
            .expire(&set, ttl)
            .sadd(&index, format!("{set}\n{member}"))
            .expire(&index, ttl);
        self.query::<()>("subscribe", &pipe).await;
    }

    pub async fn unsubscribe_session(&self, tenant: &str, session: &str, key: &str, uri: &str) {
        let member = format!("{session}\n{uri}");
        if !self.is_shared() {
            let mut local = self.local.lock().expect("subscriber map lock");
            if let Some(set) = local.sessions.get_mut(&(tenant.into(), key.into())) {
                set.remove(&(session.into(), uri.into()));
            }
            return;
        }
        let (set, index) = (self.set_key(tenant, key), self.session_index(session));
        let mut pipe = redis::pipe();
        pipe.srem(&set, &member).srem(&index, format!("{set}\n{member}"));
        self.query::<()>("unsubscribe", &pipe).await;
    }

    /// A session ended (DELETE): its subscriptions go everywhere.
    pub async fn forget_session(&self, session: &str) {
        if !self.is_shared() {
            let mut local = self.local.lock().expect("subscriber map lock");
            for set in local.sessions.values_mut() {
                set.retain(|(s, _)| s != session);
            }
            return;
        }
        let index = self.session_index(session);
        let Some((entries,)) = self.query::<(Vec<String>,)>("forget_session", redis::pipe().smembers(&index)).await
        else {
            return;
        };
        let mut pipe = redis::pipe();
        for entry in &entries {
            if let Some((set, member)) = entry.split_once('\n') {
                pipe.srem(set, member);
            }
        }
        self.query::<()>("forget_session", pipe.del(&index)).await;
    }

    pub(super) async fn session_subscribers(&self, update: &Update) -> Vec<(String, String)> {
        if !self.is_shared() {
            let local = self.local.lock().expect("subscriber map lock");
            return update
                .keys
                .iter()
                .filter_map(|k| local.sessions.get(&(update.tenant.clone(), k.clone())))
                .flatten()
                .cloned()
                .collect();
        }
        let mut pipe = redis::pipe();
        for key in &update.keys {
            pipe.smembers(self.set_key(&update.tenant, key));
        }
        let sets = self.query::<Vec<Vec<String>>>("session_subscribers", &pipe).await.unwrap_or_default();
        sets.into_iter()
            .flatten()
            .filter_map(|m| m.split_once('\n').map(|(s, u)| (s.to_string(), u.to_string())))
            .collect()
    }
}
