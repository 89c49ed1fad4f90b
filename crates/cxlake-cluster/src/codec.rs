//! Plan codecs that carry what cxlake functions hold beyond their names.
//!
//! Ballista serializes plans with datafusion-proto, which names each function and lets the
//! receiving process look it up in its own registry. A cxlake aggregate looked up that way has the
//! default invalid-input policy, whatever the client's session said, so these codecs wrap
//! Ballista's own (which handle its shuffle and cache nodes) and add the function's state to the
//! name (see `cxlake::udfs::wire`). The client, the scheduler and the executors must all use
//! them: the client and scheduler encode logical plans, the scheduler encodes the physical stages
//! the executors decode. The physical codec also carries cxlake's own operator, the one-pass
//! session numbering (`cxlake::udfs::sessions_plan`).

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use cxlake::arrow::datatypes::SchemaRef;
use cxlake::datafusion::catalog::TableProvider;
use cxlake::datafusion::common::{exec_err, TableReference};
use cxlake::datafusion::datasource::file_format::FileFormatFactory;
use cxlake::datafusion::execution::TaskContext;
use cxlake::datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan};
use cxlake::datafusion::physical_plan::ExecutionPlan;
use cxlake::udfs::sessions_plan::SessionNumberExec;
use cxlake::udfs::{decode_aggregate, encode_aggregate_state};
use cxlake::Result;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

/// Writes `udaf`'s state into `buf` when it has any; the name alone travels otherwise.
fn encode_udaf(udaf: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
    if let Some(state) = encode_aggregate_state(udaf) {
        buf.extend_from_slice(&state);
    }
    Ok(())
}

/// Rebuilds an aggregate from its state. Reached only for functions that sent state (cxlake's),
/// or whose name the registry did not know.
fn decode_udaf(name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
    if buf.is_empty() {
        return exec_err!(
            "the aggregate function '{name}' is not registered in this cluster process: start the scheduler and \
             executors with `cxlake cluster scheduler` and `cxlake cluster executor` of the client's cxlake version"
        );
    }
    decode_aggregate(name, buf)
}

/// Ballista's logical codec, with cxlake's aggregates carrying their policy.
#[derive(Debug, Default)]
pub struct CxlakeLogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for CxlakeLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.ballista.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_udaf(node, buf)
    }
}

/// Ballista's physical codec, with cxlake's aggregates carrying their policy and cxlake's
/// one-pass session operator.
#[derive(Debug, Default)]
pub struct CxlakePhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for CxlakePhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let [input] = inputs {
            if let Some(exec) = SessionNumberExec::from_bytes(buf, Arc::clone(input))? {
                return Ok(Arc::new(exec));
            }
        }
        self.ballista.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(exec) = node.downcast_ref::<SessionNumberExec>() {
            buf.extend_from_slice(&exec.to_bytes());
            return Ok(());
        }
        self.ballista.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_udaf(node, buf)
    }
}
