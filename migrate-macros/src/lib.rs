//! `embed_migrations!`: reads a migrations directory at compile time, runs `migrate-core`'s
//! analysis on it and either embeds the migrations as static data or fails the build with every
//! finding. All the logic lives in `migrate-core`; this crate only turns its result into tokens.

use std::path::PathBuf;

#[cfg(feature = "testing")]
mod test_attribute;

use migrate_core::analysis::Diagnostic;
use migrate_core::analysis::check::{Analysis, analyze_dir_configured};
use migrate_core::lint::config::{LintOverrides, TARGET_VERSIONS};
use migrate_core::lint::{Level, LintConfig};
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token, bracketed};

/// `"dir"` then optional `key = value` settings.
struct Args {
    dir: LitStr,
    /// Override the directory's `migrate.toml`.
    overrides: LintOverrides,
}

const USAGE: &str = "embed_migrations! takes the migrations directory, relative to the crate's Cargo.toml, then optional settings: embed_migrations!(\"migrations\", target_postgres = 15, warn = [\"renaming-column\"], off = [\"ban-drop-column\"], deny = [\"unknown-statement\"])";

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Args> {
        let dir: LitStr = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), USAGE))?;
        let mut overrides = LintOverrides::default();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "target_postgres" => {
                    let version: LitInt = input.parse()?;
                    let value: u32 = version.base10_parse()?;
                    if !TARGET_VERSIONS.contains(&value) {
                        return Err(syn::Error::new(
                            version.span(),
                            "target_postgres is a PostgreSQL major version from 10 to 18",
                        ));
                    }
                    overrides.target_version = Some(value);
                }
                "warn" | "off" | "deny" => {
                    let level = match key.to_string().as_str() {
                        "warn" => Level::Warning,
                        "off" => Level::Off,
                        _ => Level::Error,
                    };
                    let content;
                    bracketed!(content in input);
                    let rules = content
                        .parse_terminated(|p: ParseStream<'_>| p.parse::<LitStr>(), Token![,])?;
                    for rule in rules {
                        // Checked here, so that the error points at the rule's name.
                        LintConfig::default()
                            .set_level(&rule.value(), level)
                            .map_err(|message| syn::Error::new(rule.span(), message))?;
                        overrides.levels.push((rule.value(), level));
                    }
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown setting `{other}`; {USAGE}"),
                    ));
                }
            }
        }
        Ok(Args { dir, overrides })
    }
}

/// More findings than this are summarised, so that a directory of garbage stays readable.
const MAX_REPORTED: usize = 50;

/// Embeds the migrations of a directory (relative to the calling crate's `Cargo.toml`) as a
/// `migrate::Migrations`, after checking the revision graph, every header and every statement.
///
/// ```ignore
/// static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("migrations");
/// ```
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    let args = match syn::parse::<Args>(input) {
        Ok(args) => args,
        Err(error) => {
            let error = error.to_compile_error();
            return quote!({ #error ::migrate::__private::migrations(&[]) }).into();
        }
    };
    let literal = args.dir;
    let written = literal.value();
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return compile_error(
            literal.span(),
            "CARGO_MANIFEST_DIR is not set: embed_migrations! must be built by cargo",
        )
        .into();
    };
    let dir = PathBuf::from(manifest_dir).join(&written);
    let analysis = analyze_dir_configured(&dir, &written, &args.overrides);
    // Cargo sets OUT_DIR only for a package with a build script; without one, adding or removing
    // a file in the directory would not rebuild the host.
    let has_build_script = std::env::var_os("OUT_DIR").is_some();
    expand(&analysis, &written, has_build_script, literal.span()).into()
}

fn compile_error(span: Span, message: &str) -> TokenStream2 {
    quote::quote_spanned!(span=> ::core::compile_error!(#message);)
}

fn expand(analysis: &Analysis, written: &str, has_build_script: bool, span: Span) -> TokenStream2 {
    // Referencing every file makes the compiler rebuild the host when one of them changes. One
    // constant for all of them: a constant each costs the compiler a hundred times more.
    let paths = analysis.files.iter().filter_map(|path| path.to_str());
    let tracked = quote!(
        const _: &[&[u8]] = &[#(::core::include_bytes!(#paths)),*];
    );

    let errors: Vec<&Diagnostic> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    if !errors.is_empty() {
        let mut reported: Vec<TokenStream2> = errors
            .iter()
            .take(MAX_REPORTED)
            .map(|d| compile_error(span, &d.to_string()))
            .collect();
        if errors.len() > MAX_REPORTED {
            let more = format!(
                "[too-many-errors] {} more errors in {written} not shown; fix the ones above and build again",
                errors.len() - MAX_REPORTED
            );
            reported.push(compile_error(span, &more));
        }
        return quote!({
            #tracked
            #(#reported)*
            ::migrate::__private::migrations(&[])
        });
    }

    let mut warnings: Vec<String> = analysis
        .diagnostics
        .iter()
        // A frozen history's findings are information for the commands, not compiler warnings.
        .filter(|d| d.severity == migrate_core::analysis::Severity::Warning)
        .map(ToString::to_string)
        .collect();
    if !has_build_script {
        warnings.push(format!(
            "[missing-build-script] this crate has no build.rs, so adding or removing a file in {written} will not rebuild it\n  = help: add build.rs next to Cargo.toml containing\n          fn main() {{ println!(\"cargo:rerun-if-changed={written}\"); }}"
        ));
    }
    let warnings = warnings.iter().map(|text| {
        // Stable Rust has no warning API for proc-macros; a deprecated item used right here makes
        // rustc print the text as a warning at the macro call.
        quote::quote_spanned!(span=> {
            #[deprecated(note = #text)]
            #[allow(non_upper_case_globals)]
            const migrate_warning: () = ();
            let _ = migrate_warning;
        })
    });
    let index = migrate_core::__private::pack(&analysis.migrations);
    let sql = analysis.migrations.iter().map(|m| m.sql.as_str());
    let format = migrate_core::__private::PACK_FORMAT;
    let target_postgres = analysis.lint.target_version;
    let snapshot = match &analysis.snapshot {
        Some(text) => quote!(::core::option::Option::Some(#text)),
        None => quote!(::core::option::Option::None),
    };
    let history_digest = migrate_core::__private::history_digest_hex(
        analysis
            .migrations
            .iter()
            .map(|m| (m.header.revision.as_str(), m.checksum.as_str())),
    );
    quote!({
        #tracked
        #(#warnings)*
        const _: () = ::migrate::__private::check_pack_format(#format);
        static PACKED: ::migrate::__private::Packed =
            ::migrate::__private::Packed::new(#index, &[#(#sql),*]);
        ::migrate::__private::migrations_embedded(&PACKED, #target_postgres, #snapshot, #history_digest)
    })
}

/// A test that gets a database of its own, migrated (the `testing` feature of `migrate`):
///
/// ```ignore
/// #[migrate::test(MIGRATIONS)]
/// fn signs_up(db: migrate::testing::TestDatabase) {
///     let mut client = db.client().unwrap();
///     // …
/// }
///
/// #[migrate::test(MIGRATIONS, fixtures("users"))]
/// async fn lists_users(db: migrate::testing::TestDatabase) {
///     let client = db.connect_async().await.unwrap();
///     // …
/// }
/// ```
///
/// A fixture `users` is the file `fixtures/users.sql` beside the test's source file (else beside
/// the crate's `Cargo.toml`), embedded at compile time and applied after the migrations.
#[cfg(feature = "testing")]
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let caller_dir = proc_macro::Span::call_site()
        .local_file()
        .and_then(|file| Some(file.parent()?.to_path_buf()));
    test_attribute::expand(args.into(), item.into(), caller_dir).into()
}
