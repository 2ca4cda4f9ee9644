//! `#[migrate::test(MIGRATIONS)]`: a test that gets a database of its own, migrated, from
//! `migrate::testing` (which does all the work at run time).

use std::path::PathBuf;

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, LitStr, Path, Token, parenthesized};

const USAGE: &str = "#[migrate::test] takes the migrations, then optional fixtures: #[migrate::test(MIGRATIONS)] or #[migrate::test(MIGRATIONS, fixtures(\"users\", \"posts\"))], on `fn name(db: migrate::testing::TestDatabase)` or an `async fn` of the same shape";

/// The migrations' path, then the fixtures' names.
struct Args {
    migrations: Path,
    fixtures: Vec<LitStr>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Args> {
        let migrations: Path = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), USAGE))?;
        let mut fixtures = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            if key != "fixtures" {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown setting `{key}`; {USAGE}"),
                ));
            }
            let content;
            parenthesized!(content in input);
            fixtures.extend(
                content.parse_terminated(|p: ParseStream<'_>| p.parse::<LitStr>(), Token![,])?,
            );
        }
        Ok(Args {
            migrations,
            fixtures,
        })
    }
}

/// `caller_dir`: the directory of the file the attribute is in, where fixtures are looked for
/// first (as sqlx does); then the crate's directory.
pub fn expand(args: TokenStream2, item: TokenStream2, caller_dir: Option<PathBuf>) -> TokenStream2 {
    let args: Args = match syn::parse2(args) {
        Ok(args) => args,
        Err(e) => return e.to_compile_error(),
    };
    let function: ItemFn = match syn::parse2(item) {
        Ok(function) => function,
        Err(e) => return syn::Error::new(e.span(), USAGE).to_compile_error(),
    };
    match expand_function(&args, function, caller_dir) {
        Ok(tokens) => tokens,
        Err(e) => e.to_compile_error(),
    }
}

fn expand_function(
    args: &Args,
    function: ItemFn,
    caller_dir: Option<PathBuf>,
) -> syn::Result<TokenStream2> {
    let signature = &function.sig;
    if signature.inputs.len() != 1 {
        return Err(syn::Error::new(
            signature.inputs.span(),
            format!(
                "a #[migrate::test] function takes one argument, the test's database, and `{}` takes {}: `fn {}(db: migrate::testing::TestDatabase)`",
                signature.ident,
                signature.inputs.len(),
                signature.ident
            ),
        ));
    }
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new(
            signature.generics.span(),
            "a #[migrate::test] function has no generic parameters",
        ));
    }
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            syn::Error::new(
                Span::call_site(),
                "CARGO_MANIFEST_DIR is not set: #[migrate::test] must be built by cargo",
            )
        })?;
    let mut fixtures = Vec::new();
    for fixture in &args.fixtures {
        let name = fixture.value();
        let file = format!("{name}.sql");
        let found = caller_dir
            .iter()
            .chain([&manifest_dir])
            .map(|dir| dir.join("fixtures").join(&file))
            .find(|path| path.is_file());
        let path = match found {
            Some(path) if !name.is_empty() && !name.contains(['/', '\\']) => path,
            _ => {
                return Err(syn::Error::new(
                    fixture.span(),
                    format!(
                        "no fixture `{name}`: a fixture is a file `fixtures/<name>.sql` beside the test's source file or the crate's Cargo.toml, and neither has `fixtures/{name}.sql`"
                    ),
                ));
            }
        };
        // `include_str!` reads a relative path from the file it is in: give it an absolute one.
        let path = std::fs::canonicalize(&path)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        fixtures.push(quote_spanned!(fixture.span()=>
            handle
                .apply_fixture(#name, ::core::include_str!(#path))
                .unwrap_or_else(|e| ::core::panic!("migrate::testing: {}", e));
        ));
    }

    let migrations = &args.migrations;
    let attributes = &function.attrs;
    let visibility = &function.vis;
    let name = &signature.ident;
    let output = &signature.output;
    let mut body_signature = signature.clone();
    body_signature.ident = Ident::new("__migrate_test_body", name.span());
    let block = &function.block;
    // A test expected to panic passes by panicking: its database goes all the same.
    let expects_panic = attributes
        .iter()
        .any(|a| a.path().is_ident("should_panic"))
        .then(|| quote!(database.expect_panic();));
    let call = if signature.asyncness.is_some() {
        quote!(::migrate::testing::block_on(__migrate_test_body(handle)))
    } else {
        quote!(__migrate_test_body(handle))
    };
    Ok(quote! {
        #[::core::prelude::v1::test]
        #(#attributes)*
        #visibility fn #name() #output {
            #body_signature #block
            #[allow(unused_mut)]
            let mut database = ::migrate::testing::TestDatabase::create(&#migrations)
                .unwrap_or_else(|e| ::core::panic!("migrate::testing: no database for this test: {}", e));
            #expects_panic
            let handle = database.handle();
            #(#fixtures)*
            let outcome = #call;
            if ::migrate::testing::TestOutcome::failed(&outcome) {
                database.keep();
            }
            outcome
        }
    })
}
