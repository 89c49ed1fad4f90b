//! Timestamps of any unit and zone as raw ticks: Arrow timestamp values count from the UTC epoch
//! whatever the zone, so functions compare raw values and scale by the unit's ticks per second,
//! with no cast pass over the batch.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{internal_err, plan_err, Result};

/// Ticks per second of a timestamp unit.
pub fn ticks_per_second(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// A timestamp column's raw values (ticks since the UTC epoch, whatever the zone) as `Int64`,
/// sharing its buffers, with the ticks per second of its unit.
pub fn raw_ticks(array: &ArrayRef, function: &str) -> Result<(Int64Array, i64)> {
    macro_rules! raw {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            Int64Array::new(a.values().clone(), a.nulls().cloned())
        }};
    }
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return internal_err!("{function}: unexpected input type {} after coercion", array.data_type());
    };
    let raw = match unit {
        TimeUnit::Second => raw!(TimestampSecondType),
        TimeUnit::Millisecond => raw!(TimestampMillisecondType),
        TimeUnit::Microsecond => raw!(TimestampMicrosecondType),
        TimeUnit::Nanosecond => raw!(TimestampNanosecondType),
    };
    Ok((raw, ticks_per_second(unit)))
}

/// Ticks per second of a timestamp type (after coercion).
pub fn type_ticks_per_second(t: &DataType, function: &str) -> Result<i64> {
    match t {
        DataType::Timestamp(unit, _) => Ok(ticks_per_second(unit)),
        other => internal_err!("{function}: unexpected input type {other} after coercion"),
    }
}

/// A timestamp argument keeps its type; a bare NULL becomes a (NULL) timestamp.
pub fn timestamp_type(function: &str, signatures: &str, arg: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, _) => Ok(t.clone()),
        DataType::Null => Ok(DataType::Timestamp(TimeUnit::Nanosecond, None)),
        DataType::Dictionary(_, value) => timestamp_type(function, signatures, arg, value),
        other => plan_err!(
            "{function}: {arg} must be a timestamp (any unit, with or without a time zone), not {other}. \
             Accepted: {signatures}"
        ),
    }
}

/// The calendar day (days since 1970-01-01) of every timestamp (or date), in the timestamp's own time zone,
/// UTC when it has none. UTC and zone-less columns take a division per row; other zones go
/// through Arrow's zone-aware cast (daylight saving time included).
pub fn local_days(array: &ArrayRef, function: &str) -> Result<Date32Array> {
    if let DataType::Date32 = array.data_type() {
        return Ok(array.as_primitive().clone());
    }
    let DataType::Timestamp(_, zone) = array.data_type() else {
        return internal_err!("{function}: unexpected input type {} after coercion", array.data_type());
    };
    let utc = zone.as_deref().is_none_or(|z| matches!(z, "UTC" | "utc" | "Z" | "+00:00" | "+00" | "Etc/UTC"));
    if utc {
        let (ticks, per_second) = raw_ticks(array, function)?;
        let per_day = per_second * 86_400;
        let days: Date32Array = ticks.unary(|t| t.div_euclid(per_day) as i32);
        return Ok(days);
    }
    let days = cast(array, &DataType::Date32)?;
    Ok(days.as_primitive().clone())
}
