use super::*;

#[tokio::test]
async fn updates_reach_only_the_tenant_and_resources_subscribed() {
    let hub = ResourceUpdates::new(None, "test:", Duration::from_secs(60), Duration::from_secs(1));
    let uri = "memory://entities/Ada%20Lovelace";
    let mut listener = hub.listen("t1", HashMap::from([("entity:Ada Lovelace".into(), uri.into())]));
    hub.publish("t2", vec!["entity:Ada Lovelace".into()]).await;
    hub.publish("t1", vec!["entity:Bob".into()]).await;
    hub.publish("t1", vec!["graph".into(), "entity:Ada Lovelace".into()]).await;
    assert_eq!(listener.updates.try_recv().unwrap(), uri, "notified with the URI as subscribed");
    assert!(listener.updates.try_recv().is_err(), "nothing from another tenant or resource");

    let mut stream = hub.attach_session("s1");
    hub.subscribe_session("t1", "s1", "graph", "memory://knowledge-graph").await;
    hub.publish("t1", vec!["graph".into()]).await;
    assert_eq!(stream.updates.try_recv().unwrap(), "memory://knowledge-graph");
    hub.forget_session("s1").await;
    hub.publish("t1", vec!["graph".into()]).await;
    assert!(stream.updates.try_recv().is_err(), "a forgotten session hears nothing");

    drop((listener, stream));
    assert!(hub.local.lock().unwrap().subscribers.is_empty(), "dropping a subscription unregisters it");
}
