//! Whether a column type change keeps the rows as they are (PostgreSQL's binary-coercible
//! cases, measured in LOCKS.md) or rewrites the table.

/// Splits a type into its name (normalised) and its arguments.
fn type_parts(ty: &str) -> (String, Vec<u32>) {
    let ty = ty
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    // `timestamp(3) with time zone`: the zone comes after the precision.
    let (ty, zoned) = match ty.strip_suffix(" with time zone") {
        Some(rest) => (rest.to_owned(), true),
        None => (
            ty.strip_suffix(" without time zone")
                .map_or(ty.clone(), str::to_owned),
            false,
        ),
    };
    let (name, args) = match ty.split_once('(') {
        Some((name, rest)) => (
            name.trim().to_owned(),
            rest.trim_end_matches(')')
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect(),
        ),
        None => (ty.clone(), Vec::new()),
    };
    // PostgreSQL's own names for the SQL spellings.
    let name = match (name.as_str(), zoned) {
        ("timestamp", true) => "timestamptz",
        ("time", true) => "timetz",
        ("character varying", _) => "varchar",
        ("bit varying", _) => "varbit",
        ("int" | "integer", _) => "int4",
        ("bigint", _) => "int8",
        ("smallint", _) => "int2",
        ("decimal", _) => "numeric",
        ("double precision" | "float", _) => "float8",
        ("real", _) => "float4",
        ("boolean", _) => "bool",
        (other, _) => other,
    }
    .to_owned();
    (name, args)
}

/// The element type and the number of array dimensions (`int[][]`, `int ARRAY`).
fn array_parts(ty: &str) -> (&str, usize) {
    let mut element = ty.trim();
    let mut dimensions = 0;
    loop {
        if let Some(rest) = element.strip_suffix("[]") {
            element = rest.trim_end();
        } else if element.len() > 5
            && element.is_char_boundary(element.len() - 5)
            && element[element.len() - 5..].eq_ignore_ascii_case("array")
        {
            element = element[..element.len() - 5].trim_end();
        } else {
            return (element, dimensions);
        }
        dimensions += 1;
    }
}

/// Whether changing a column from `old` to `new` needs no rewrite (PostgreSQL's
/// binary-coercible cases, measured in LOCKS.md). An array is rewritten by any change of its
/// element type, even one that is binary-coercible for the element alone (measured on
/// PostgreSQL 15: `varchar(20)[]` to `varchar(40)[]` or `text[]`).
pub fn type_change_is_compatible(old: &str, new: &str) -> bool {
    type_change_is_compatible_in(old, new, false)
}

/// [`type_change_is_compatible`] in a session whose TimeZone is UTC (`utc`), where
/// `timestamp` and `timestamptz` hold the same bytes and PostgreSQL 12+ skips the rewrite.
pub fn type_change_is_compatible_in(old: &str, new: &str, utc: bool) -> bool {
    if utc {
        let (old_name, old_args) = type_parts(old);
        let (new_name, new_args) = type_parts(new);
        let pair = [old_name.as_str(), new_name.as_str()];
        if (pair == ["timestamp", "timestamptz"] || pair == ["timestamptz", "timestamp"])
            && (new_args.is_empty() || (!old_args.is_empty() && new_args[0] >= old_args[0]))
        {
            return true;
        }
    }
    type_change_is_compatible_strict(old, new)
}

fn type_change_is_compatible_strict(old: &str, new: &str) -> bool {
    let (old_element, old_dimensions) = array_parts(old);
    let (new_element, new_dimensions) = array_parts(new);
    let (old_name, old_args) = type_parts(old_element);
    let (new_name, new_args) = type_parts(new_element);
    if old_name == new_name && old_args == new_args && old_dimensions == new_dimensions {
        return true;
    }
    if old_dimensions > 0 || new_dimensions > 0 {
        return false;
    }
    match (old_name.as_str(), new_name.as_str()) {
        ("varchar", "text") | ("text", "varchar") if new_args.is_empty() => true,
        ("varchar", "varchar") => {
            new_args.is_empty() || (!old_args.is_empty() && new_args[0] >= old_args[0])
        }
        // More fractional digits (or the default, the most) keep every stored value.
        ("timestamp", "timestamp")
        | ("timestamptz", "timestamptz")
        | ("time", "time")
        | ("timetz", "timetz")
        | ("interval", "interval") => {
            new_args.is_empty() || (!old_args.is_empty() && new_args[0] >= old_args[0])
        }
        ("numeric", "numeric") => {
            new_args.is_empty()
                || (old_args.len() == 2
                    && new_args.len() == 2
                    && new_args[1] == old_args[1]
                    && new_args[0] >= old_args[0])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_compatible_type_changes() {
        assert!(type_change_is_compatible("varchar(10)", "varchar(20)"));
        assert!(type_change_is_compatible("character varying(10)", "text"));
        assert!(type_change_is_compatible("numeric(10,2)", "numeric(12,2)"));
        assert!(type_change_is_compatible("int", "integer"));
        assert!(!type_change_is_compatible("int", "bigint"));
        assert!(!type_change_is_compatible("varchar(20)", "varchar(10)"));
        assert!(!type_change_is_compatible("text", "varchar(5)"));
        assert!(!type_change_is_compatible("numeric(10,2)", "numeric(12,3)"));
        assert!(!type_change_is_compatible("timestamp", "timestamptz"));
        assert!(!type_change_is_compatible("varchar(20)[]", "varchar(40)[]"));
        assert!(!type_change_is_compatible("varchar(20)[]", "text[]"));
        assert!(!type_change_is_compatible("int[]", "bigint[]"));
        assert!(!type_change_is_compatible("int", "int[]"));
        assert!(type_change_is_compatible("text[]", "text []"));
        assert!(type_change_is_compatible("int ARRAY", "integer[]"));
    }

    #[test]
    fn a_type_written_in_another_spelling_is_the_same_type() {
        for (old, new) in [
            ("timestamptz", "timestamp with time zone"),
            ("timestamptz(3)", "timestamp(3) with time zone"),
            ("timestamp", "timestamp without time zone"),
            ("TIMESTAMP  WITH TIME ZONE", "timestamptz"),
            ("timetz", "time with time zone"),
            ("double precision", "float8"),
            ("float", "double precision"),
            ("real", "float4"),
            ("boolean", "bool"),
            ("int4", "integer"),
            ("character varying(30)", "varchar(30)"),
            ("bit varying(8)", "varbit(8)"),
        ] {
            assert!(type_change_is_compatible(old, new), "{old} -> {new}");
        }
        assert!(!type_change_is_compatible(
            "timestamp",
            "timestamp with time zone"
        ));
        assert!(!type_change_is_compatible(
            "timestamptz(6)",
            "timestamp(3) with time zone"
        ));
        assert!(!type_change_is_compatible("real", "double precision"));
        // Fractional seconds: more digits keep every value, fewer round them.
        assert!(type_change_is_compatible("timestamptz(3)", "timestamptz"));
        assert!(type_change_is_compatible("time(2)", "time(4)"));
        assert!(!type_change_is_compatible("timestamp", "timestamp(2)"));
    }
}
