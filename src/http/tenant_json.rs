//! The tenant object's JSON body (`GET /api/v1/tenant`, the admin's `GET` and `PATCH` of a
//! tenant): the record's part serialised once per record version, this month's usage on every
//! answer.
//!
//! The record's part (everything but `usage`, which the view puts last) is about two thirds of
//! the body and of its serialising cost: field names, escaped strings, two timestamps. It only
//! changes with the record (a new `Arc` from the tenant's actor) or with the limits and features
//! the policy derives from it, so it is kept per tenant and checked against those; the usage
//! changes with every request and is written after it.

use std::sync::{Arc, Weak};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use connectors_actors::admission::TenantSnapshot;
use connectors_actors::tenant::{Features, Limits, TenantId, TenantRecord};
use dashmap::DashMap;

use super::views::TenantView;
use crate::billing::usage_report;
use crate::config::Pricing;

/// Tenants whose record part is kept at most; past it all are forgotten at once (a tenant's
/// next answer serialises it again). About 600 bytes each.
const KEPT: usize = 1_024;

/// Room for a whole tenant body, so that writing the usage never grows the buffer.
const USAGE_ROOM: usize = 320;

#[derive(Default)]
pub struct TenantJson {
    kept: DashMap<TenantId, RecordPart>,
}

/// One tenant's record part, for the record version and derived limits it was written from.
struct RecordPart {
    /// Identifies the version: while this weak reference lives, no other record can be
    /// allocated where it was, so an equal pointer is this very version (a record is never
    /// changed in place: the actor installs a new `Arc`).
    record: Weak<TenantRecord>,
    limits: Limits,
    features: Features,
    /// The view's JSON without its usage, up to and without the closing brace.
    json: Bytes,
}

impl RecordPart {
    fn is_of(&self, tenant: &TenantSnapshot) -> bool {
        std::ptr::eq(self.record.as_ptr(), Arc::as_ptr(&tenant.record))
            && self.limits == tenant.limits
            && self.features == tenant.features
    }
}

impl TenantJson {
    /// The tenant object with this month's usage, as `Json(TenantView::from_snapshot(..))`
    /// would answer it, byte for byte.
    pub fn response(&self, tenant: &TenantSnapshot, pricing: &Pricing) -> Response {
        match self.body(tenant, pricing) {
            Ok(body) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
            Err(error) => {
                // As axum's `Json` answers it: the edge renders the error body.
                tracing::error!(%error, tenant = %tenant.record.id, "cannot serialise the tenant");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    fn body(&self, tenant: &TenantSnapshot, pricing: &Pricing) -> Result<Bytes, serde_json::Error> {
        let record_part = self.record_part(tenant)?;
        let mut body = BytesMut::with_capacity(record_part.len() + USAGE_ROOM).writer();
        body.get_mut().extend_from_slice(&record_part);
        body.get_mut().extend_from_slice(b",\"usage\":");
        serde_json::to_writer(&mut body, &usage_report(pricing, &tenant.record.id, tenant.month, &tenant.usage))?;
        body.get_mut().put_u8(b'}');
        Ok(body.into_inner().freeze())
    }

    fn record_part(&self, tenant: &TenantSnapshot) -> Result<Bytes, serde_json::Error> {
        if let Some(kept) = self.kept.get(&tenant.record.id).filter(|kept| kept.is_of(tenant)) {
            return Ok(kept.json.clone());
        }
        let mut json = serde_json::to_vec(&TenantView::without_usage(tenant))?;
        // `usage` is the view's last field: the body goes on where the brace was.
        let closing = json.pop();
        debug_assert_eq!(closing, Some(b'}'));
        let json = Bytes::from(json);
        if self.kept.len() >= KEPT {
            self.kept.clear();
        }
        let part = RecordPart {
            record: Arc::downgrade(&tenant.record),
            limits: tenant.limits,
            features: tenant.features,
            json: json.clone(),
        };
        self.kept.insert(tenant.record.id.clone(), part);
        Ok(json)
    }
}

#[cfg(test)]
#[path = "tenant_json_tests.rs"]
mod tests;
