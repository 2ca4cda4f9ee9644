//! Built-in functions whose value differs per row: a column default calling one is evaluated
//! for every existing row, so `ADD COLUMN` rewrites the table (any other default is evaluated
//! once and stored, PostgreSQL 11+). The lint judges statements by it, the drift fixes choose
//! their form by it.

pub const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setseed",
    "txid_current",
];
