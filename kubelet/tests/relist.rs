//! Relisting a (fake) CRI runtime into the kubelet's view: objects are grouped by the pod
//! uid label, states and IPs come through, and objects the kubelet did not create are
//! ignored.

#![allow(clippy::unwrap_used)]

use cri::fake::FakeRuntime;
use kubelet::cri_runtime::{container_config, relist, sandbox_config};
use kubelet::runtime::{ContainerState, SandboxState};

#[tokio::test]
async fn relist_groups_by_pod_uid() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    fake.add_image("busybox");
    let server = fake.serve(&dir.path().join("cri.sock")).await.unwrap();
    let client = cri::Client::new(server.socket().to_str().unwrap()).unwrap();

    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }))
    .unwrap();
    let sb = sandbox_config(&pod, 0, dir.path(), "", None);
    let sandbox = client.run_pod_sandbox(sb.clone(), "").await.unwrap();
    let c = &pod.spec.as_ref().unwrap().containers[0];
    let id = client
        .create_container(
            &sandbox,
            container_config(&pod, c, 0, vec![], vec![], vec![]),
            sb.clone(),
        )
        .await
        .unwrap();
    client.start_container(&id).await.unwrap();
    // Something the kubelet did not create (no pod uid label) is not listed.
    let mut other = sb.clone();
    other.labels.clear();
    other.metadata.as_mut().unwrap().name = "stranger".into();
    other.metadata.as_mut().unwrap().uid = "other".into();
    client.run_pod_sandbox(other, "").await.unwrap();

    let list = relist(&client).await.unwrap();
    assert_eq!(list.len(), 1);
    let p = &list["uid-1"];
    assert_eq!((p.name.as_str(), p.namespace.as_str()), ("web", "ns"));
    assert_eq!(p.sandboxes[0].state, SandboxState::Ready);
    assert!(p.sandboxes[0].ip.is_some());
    assert_eq!(p.containers[0].name, "app");
    assert_eq!(p.containers[0].state, ContainerState::Running);

    fake.exit_container(&id, 3, "Error");
    let list = relist(&client).await.unwrap();
    let c = &list["uid-1"].containers[0];
    assert_eq!(
        (c.state, c.exit_code, c.reason.as_str()),
        (ContainerState::Exited, 3, "Error")
    );
}
