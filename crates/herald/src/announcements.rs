//! Operational events (API.md section 11): Herald telling the platform about its own delivery
//! system (`webhook.disabled`, `webhook.enabled`, `delivery.failed`).
//!
//! The state change an event announces writes it into the store in the same transaction
//! ([`Announcement`]), so it exists exactly when the change does, whichever node made it and
//! whatever crashes after. This task, on every node, publishes what is waiting through the
//! same path as `POST /v1/events` (signed, filtered, retried like any event) into the
//! webhook's org and the operator's, then deletes it. The announcement's id is the events'
//! caller id, deduplicated per org, so an announcement published twice (two nodes at once, or
//! again after a crash before its delete) still makes one event in each org.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::api::AppState;
use crate::domain::ids::OrgId;
use crate::domain::time::format_ms;
use crate::store::{Announcement, StoreError};

/// How often to look for announcements: a state change is told within about this long.
const TICK: Duration = Duration::from_millis(250);
/// Announcements published per look.
const BATCH: u32 = 64;

/// Publishes announcements until `stop` says so.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = publish_waiting(&state).await {
            tracing::warn!(error = %e, "could not publish operational events; trying again");
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum AnnounceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Publish(String),
}

/// Publishes one batch of waiting announcements, oldest first.
async fn publish_waiting(state: &AppState) -> Result<(), AnnounceError> {
    let store = state.store();
    let waiting = store.announcements(BATCH).await?;
    if waiting.is_empty() {
        return Ok(());
    }
    let operator = store.operator_org().await?;
    // Whether each org lives, looked up once per batch: a burst of failures is one org's.
    let mut live: HashMap<OrgId, bool> = HashMap::new();
    for announcement in waiting {
        let org = announcement.org_id.clone();
        let lives = match live.get(&org) {
            Some(lives) => *lives,
            None => {
                let lives = store.get_org(org.clone()).await?.is_some();
                live.insert(org, lives);
                lives
            }
        };
        // An erased org's announcements go nowhere: its webhooks are gone.
        if lives {
            let data = serde_json::value::to_raw_value(&data_of(&announcement))
                .map_err(|e| AnnounceError::Publish(e.to_string()))?;
            for org in orgs_for(&announcement, operator.as_ref()) {
                crate::api::events::publish(
                    state,
                    org,
                    &announcement.event_type,
                    &data,
                    Some(announcement.id.clone()),
                    None,
                )
                .await
                .map_err(|e| AnnounceError::Publish(format!("{}: {}", e.code, e.message)))?;
            }
        }
        store.forget_announcement(announcement.id).await?;
    }
    Ok(())
}

/// The webhook's org and, when different, the operator's.
fn orgs_for(announcement: &Announcement, operator: Option<&OrgId>) -> Vec<OrgId> {
    let mut orgs = vec![announcement.org_id.clone()];
    if let Some(operator) = operator
        && *operator != announcement.org_id
    {
        orgs.push(operator.clone());
    }
    orgs
}

/// The event's `data`, as API.md section 11 lists it for each type.
fn data_of(a: &Announcement) -> Value {
    match (&a.failed, a.event_type.as_str()) {
        (Some(failed), _) => json!({
            "delivery_id": failed.delivery_id,
            "event_id": failed.event_id,
            "event_type": failed.event_type,
            "webhook_id": a.webhook_id,
            "org_id": a.org_id,
            "attempts": failed.attempts,
            "last_error": failed.last_error.map(|e| e.as_str()),
            "last_response_status": failed.last_response_status,
        }),
        (None, "webhook.enabled") => json!({
            "webhook_id": a.webhook_id,
            "org_id": a.org_id,
            "url": a.url,
            "enabled_at": format_ms(a.at),
        }),
        (None, _) => json!({
            "webhook_id": a.webhook_id,
            "org_id": a.org_id,
            "url": a.url,
            "reason": a.reason,
            "disabled_at": format_ms(a.at),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error_class::ErrorClass;
    use crate::domain::ids::{DeliveryId, EventId, WebhookId};
    use crate::store::FailedDelivery;

    fn disabled(org: &OrgId) -> Announcement {
        Announcement {
            id: crate::store::new_announcement_id(),
            event_type: "webhook.disabled".to_owned(),
            org_id: org.clone(),
            webhook_id: WebhookId::new(),
            url: "https://example.com/hook".to_owned(),
            at: 1_700_000_000_000,
            reason: Some("gone".to_owned()),
            failed: None,
        }
    }

    #[test]
    fn announcements_go_to_the_webhooks_org_and_the_operators_once_each() {
        let tenant = OrgId::new();
        let operator = OrgId::new();
        let a = disabled(&tenant);
        assert_eq!(orgs_for(&a, Some(&operator)), vec![tenant.clone(), operator]);
        assert_eq!(orgs_for(&a, Some(&tenant)), vec![tenant.clone()]);
        assert_eq!(orgs_for(&a, None), vec![tenant]);
    }

    #[test]
    fn each_type_carries_the_data_the_contract_lists() {
        let org = OrgId::new();
        let a = disabled(&org);
        let data = data_of(&a);
        assert_eq!(data["reason"], "gone");
        assert_eq!(data["disabled_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(data["url"], "https://example.com/hook");
        let enabled = Announcement {
            event_type: "webhook.enabled".to_owned(),
            reason: None,
            ..a.clone()
        };
        let data = data_of(&enabled);
        assert_eq!(data["enabled_at"], "2023-11-14T22:13:20.000Z");
        assert!(data.get("reason").is_none());
        let failed = Announcement {
            event_type: "delivery.failed".to_owned(),
            reason: None,
            failed: Some(FailedDelivery {
                delivery_id: DeliveryId::new(),
                event_id: EventId::new(),
                event_type: "order.filled".to_owned(),
                attempts: 6,
                last_error: Some(ErrorClass::HttpStatus),
                last_response_status: Some(503),
            }),
            ..a
        };
        let data = data_of(&failed);
        let mut keys: Vec<&str> = data
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut listed = [
            "delivery_id",
            "event_id",
            "event_type",
            "webhook_id",
            "org_id",
            "attempts",
            "last_error",
            "last_response_status",
        ];
        listed.sort_unstable();
        assert_eq!(keys, listed);
        assert_eq!(data["last_error"], "http_status");
        assert_eq!(data["attempts"], 6);
    }
}
