//! Leader election through a coordination.k8s.io/v1 Lease, as client-go's leaderelection:
//! one of several instances holds the Lease and acts; the others wait until it stops
//! renewing. The holder renews every `retry_period`; if it cannot renew within
//! `renew_deadline`, it stops acting (and the daemon exits, as upstream's do), so two
//! instances never act at once for longer than the lease duration allows.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use crate::{Error, Result};

/// Leader election settings (upstream defaults).
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease (`kube-system`).
    pub namespace: String,
    /// Name of the Lease (`kube-scheduler`, `kube-controller-manager`).
    pub name: String,
    /// This instance's identity (`hostname_uuid`).
    pub identity: String,
    /// How long a lease is valid after its last renewal (15 s).
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before giving up (10 s).
    pub renew_deadline: Duration,
    /// Interval between attempts (2 s).
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Defaults for the Lease `name` in kube-system with a unique identity.
    pub fn new(name: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        LeaderConfig {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: format!(
                "{}_{}_{}",
                host.trim(),
                std::process::id(),
                Timestamp::now().as_nanosecond() % 1_000_000
            ),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease (acquired or renewed).
    Leading,
    /// Someone else holds a valid lease.
    Following,
}

/// Tries once to acquire or renew the lease.
pub async fn try_acquire_or_renew(leases: &Api<Lease>, cfg: &LeaderConfig) -> Result<Attempt> {
    let now = MicroTime(Timestamp::now());
    let secs = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
    let Some(mut lease) = leases.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following),
            Err(e) => Err(e.into()),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let duration = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(cfg.lease_duration);
    let expired = match &spec.renew_time {
        Some(MicroTime(t)) => {
            let age = Timestamp::now().duration_since(*t);
            age.as_secs() as f64 + f64::from(age.subsec_nanos()) / 1e9 > duration.as_secs_f64()
        }
        None => true,
    };
    if holder == cfg.identity {
        spec.renew_time = Some(now);
    } else if holder.is_empty() || expired {
        spec.holder_identity = Some(cfg.identity.clone());
        spec.lease_duration_seconds = Some(secs);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    } else {
        return Ok(Attempt::Following);
    }
    // The resourceVersion we read is the precondition: a concurrent taker makes this a 409.
    match leases
        .replace(&cfg.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(Attempt::Leading),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following),
        Err(e) => Err(e.into()),
    }
}

/// Waits until this instance leads, then runs `work` while renewing the lease. Returns
/// `Err(LostLease)` when renewal fails for `renew_deadline` (`work` is dropped then), or
/// `work`'s completion.
pub async fn run_as_leader<F>(client: kube::Client, cfg: LeaderConfig, work: F) -> Result<()>
where
    F: std::future::Future<Output = ()>,
{
    let leases: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        match try_acquire_or_renew(&leases, &cfg).await {
            Ok(Attempt::Leading) => break,
            Ok(Attempt::Following) => {}
            Err(e) => {
                tracing::warn!(lease = %cfg.name, error = %e, "leader election attempt failed")
            }
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
    let renew = async {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(cfg.retry_period).await;
            match try_acquire_or_renew(&leases, &cfg).await {
                Ok(Attempt::Leading) => last_ok = tokio::time::Instant::now(),
                Ok(Attempt::Following) => {
                    return format!("lease {} taken by another instance", cfg.name);
                }
                Err(e) => {
                    tracing::warn!(lease = %cfg.name, error = %e, "renewing the lease failed");
                    if last_ok.elapsed() > cfg.renew_deadline {
                        return format!(
                            "could not renew lease {} within {:?}",
                            cfg.name, cfg.renew_deadline
                        );
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = work => Ok(()),
        why = renew => Err(Error::LostLease(why)),
    }
}
