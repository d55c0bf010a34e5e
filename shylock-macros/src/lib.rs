//! `#[locked]`: hold a shylock lock for a whole function. Use it through
//! the `shylock` crate, as `#[shylock::locked(...)]`, where it is
//! documented.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Token, Type};

/// The implementation of `#[locked]`, which lives in the `shylock-macros`
/// crate.
#[proc_macro_attribute]
pub fn locked(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(attr as Args);
    let function = syn::parse_macro_input!(item as ItemFn);
    match expand(args, function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

struct Args {
    template: LitStr,
    nowait: bool,
    timeout: Option<(u64, Span)>,
    ttl: Option<(u64, Span)>,
    backend: Option<Expr>,
}

enum Opt {
    NoWait,
    Timeout(LitStr),
    Ttl(LitStr),
    Backend(Expr),
}

impl Parse for Opt {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        match key.to_string().as_str() {
            "nowait" => Ok(Opt::NoWait),
            "timeout" | "ttl" | "backend" => {
                input.parse::<Token![=]>()?;
                match key.to_string().as_str() {
                    "timeout" => Ok(Opt::Timeout(input.parse()?)),
                    "ttl" => Ok(Opt::Ttl(input.parse()?)),
                    _ => Ok(Opt::Backend(input.parse()?)),
                }
            }
            other => Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown option `{other}`; #[locked] takes `nowait`, `timeout = \"5s\"`, \
                     `ttl = \"30s\"` and `backend = expr`"
                ),
            )),
        }
    }
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[locked] needs the lock name, e.g. #[locked(\"report-{user_id}\")]",
            ));
        }
        let template: LitStr = input.parse()?;
        let mut args = Args {
            template,
            nowait: false,
            timeout: None,
            ttl: None,
            backend: None,
        };
        if input.is_empty() {
            return Ok(args);
        }
        input.parse::<Token![,]>()?;
        let opts = Punctuated::<Opt, Token![,]>::parse_terminated(input)?;
        for opt in opts {
            match opt {
                Opt::NoWait => args.nowait = true,
                Opt::Timeout(lit) => args.timeout = Some((parse_duration(&lit)?, lit.span())),
                Opt::Ttl(lit) => args.ttl = Some((parse_duration(&lit)?, lit.span())),
                Opt::Backend(expr) => args.backend = Some(expr),
            }
        }
        if args.nowait && args.timeout.is_some() {
            return Err(syn::Error::new(
                args.template.span(),
                "`nowait` and `timeout` exclude each other: nowait never waits",
            ));
        }
        Ok(args)
    }
}

/// "250ms", "5s", "2m", "1h" → milliseconds.
fn parse_duration(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let bad = || {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid duration {text:?}; use a whole number with a unit: \"250ms\", \"5s\", \
                 \"2m\", \"1h\""
            ),
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let ms = number.checked_mul(factor).ok_or_else(bad)?;
    if ms == 0 {
        return Err(syn::Error::new(
            lit.span(),
            "the duration must be above zero",
        ));
    }
    Ok(ms)
}

/// A `{arg}` or `{arg.field.field}` placeholder.
struct Placeholder {
    root: String,
    path: Vec<String>,
}

/// Splits the template into a `format!` string and its placeholders.
fn parse_template(lit: &LitStr, params: &[String]) -> syn::Result<(String, Vec<Placeholder>)> {
    let text = lit.value();
    let mut format = String::new();
    let mut placeholders = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                format.push_str("{{");
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                format.push_str("}}");
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => {
                            return Err(syn::Error::new(
                                lit.span(),
                                "unclosed `{` in the lock name template (write `{{` for a brace)",
                            ))
                        }
                    }
                }
                let mut parts = inner.split('.').map(|p| p.trim().to_owned());
                let root = parts.next().unwrap_or_default();
                let path: Vec<String> = parts.collect();
                let valid = |s: &str| {
                    !s.is_empty()
                        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                        && !s.starts_with(|c: char| c.is_ascii_digit())
                };
                if !valid(&root) || !path.iter().all(|p| valid(p)) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("`{{{inner}}}` is not `{{argument}}` or `{{argument.field}}`"),
                    ));
                }
                if !params.contains(&root) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "unknown argument `{root}` in the lock name template; the function's \
                             arguments are: {}",
                            if params.is_empty() {
                                "(none)".to_owned()
                            } else {
                                params.join(", ")
                            }
                        ),
                    ));
                }
                format.push_str("{}");
                placeholders.push(Placeholder { root, path });
            }
            '}' => {
                return Err(syn::Error::new(
                    lit.span(),
                    "unmatched `}` in the lock name template (write `}}` for a brace)",
                ))
            }
            c => format.push(c),
        }
    }
    Ok((format, placeholders))
}

/// Whether `ty` is spelled `Result<..>` (any path ending in `Result`).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident.to_string().ends_with("Result")),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

fn expand(args: Args, function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &function.sig;
    if !returns_result(&sig.output) {
        let span = match &sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => sig.ident.span(),
        };
        return Err(syn::Error::new(
            span,
            "#[locked] needs a function that returns `Result<T, E>` with `E: From<shylock::Error>`, \
             so a lock that cannot be taken can be reported",
        ));
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(_) => params.push("self".to_owned()),
            FnArg::Typed(typed) => {
                if let Pat::Ident(ident) = &*typed.pat {
                    params.push(ident.ident.to_string());
                }
            }
        }
    }
    let (format, placeholders) = parse_template(&args.template, &params)?;
    let values = placeholders.iter().map(|p| {
        let root = if p.root == "self" {
            quote!(self)
        } else {
            let ident = format_ident!("{}", p.root);
            quote!(#ident)
        };
        let path = p.path.iter().map(|f| format_ident!("{}", f));
        quote!(#root #(.#path)*)
    });
    let name_expr = quote!(::std::format!(#format, #(#values),*));

    let is_async = sig.asyncness.is_some();
    let options = {
        let ttl = args
            .ttl
            .map(|(ms, span)| quote_spanned!(span=> .ttl(::std::time::Duration::from_millis(#ms))));
        quote!(::shylock::LockOptions::default() #ttl)
    };
    let (lock_type, companion_ret) = if is_async {
        (quote!(::shylock::AsyncLock), quote!(::shylock::AsyncLock))
    } else {
        (quote!(::shylock::Lock), quote!(::shylock::Lock))
    };
    let build_lock = match &args.backend {
        Some(backend) => quote!(#lock_type::with_backend(__shylock_name, #backend)),
        None => quote!(#lock_type::new(__shylock_name)),
    };
    let build_lock = if args.ttl.is_some() {
        quote!(#build_lock.with_options(#options))
    } else {
        build_lock
    };
    let dot_await = if is_async { quote!(.await) } else { quote!() };
    let acquire = if args.nowait {
        quote! {
            match __shylock_lock.try_acquire() #dot_await {
                ::std::result::Result::Ok(::std::option::Option::Some(guard)) => guard,
                ::std::result::Result::Ok(::std::option::Option::None) => {
                    return ::std::result::Result::Err(::std::convert::From::from(
                        ::shylock::Error::Held { name: __shylock_lock.name().to_owned() },
                    ));
                }
                ::std::result::Result::Err(error) => {
                    return ::std::result::Result::Err(::std::convert::From::from(error));
                }
            }
        }
    } else if let Some((ms, _)) = args.timeout {
        quote! {
            match __shylock_lock.acquire_timeout(::std::time::Duration::from_millis(#ms)) #dot_await {
                ::std::result::Result::Ok(::std::option::Option::Some(guard)) => guard,
                ::std::result::Result::Ok(::std::option::Option::None) => {
                    return ::std::result::Result::Err(::std::convert::From::from(
                        ::shylock::Error::Timeout {
                            name: __shylock_lock.name().to_owned(),
                            waited: ::std::time::Duration::from_millis(#ms),
                        },
                    ));
                }
                ::std::result::Result::Err(error) => {
                    return ::std::result::Result::Err(::std::convert::From::from(error));
                }
            }
        }
    } else {
        quote! {
            match __shylock_lock.acquire() #dot_await {
                ::std::result::Result::Ok(guard) => guard,
                ::std::result::Result::Err(error) => {
                    return ::std::result::Result::Err(::std::convert::From::from(error));
                }
            }
        }
    };
    let attrs = &function.attrs;
    let vis = &function.vis;
    let block = &function.block;
    let output = match &sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => unreachable!("checked above"),
    };
    let run_body = if is_async {
        quote!(async move #block.await)
    } else {
        quote!((move || -> #output #block)())
    };
    let release = if is_async {
        quote!(__shylock_guard.release().await)
    } else {
        quote!(__shylock_guard.release())
    };
    let body = quote! {
        {
            let __shylock_name: ::std::string::String = #name_expr;
            let __shylock_lock = #build_lock;
            let __shylock_guard = #acquire;
            let __shylock_result: #output = #run_body;
            // The guard is released on every path: here after the body, and
            // by its drop when the body panics. A body that succeeded while
            // its lock was lost did its work unprotected: that is an error.
            match (__shylock_result, #release) {
                (
                    ::std::result::Result::Ok(_),
                    ::std::result::Result::Err(error @ ::shylock::Error::LockLost { .. }),
                ) => ::std::result::Result::Err(::std::convert::From::from(error)),
                (result, _) => result,
            }
        }
    };
    let mut sig_out = sig.clone();
    let companion_ident = format_ident!("{}_lock", sig.ident);
    let mut companion_sig = sig.clone();
    companion_sig.ident = companion_ident;
    companion_sig.asyncness = None;
    companion_sig.output = syn::parse_quote!(-> #companion_ret);
    let companion_build = match &args.backend {
        Some(backend) => quote!(#lock_type::with_backend(__shylock_name, #backend)),
        None => quote!(#lock_type::new(__shylock_name)),
    };
    let companion_build = if args.ttl.is_some() {
        quote!(#companion_build.with_options(#options))
    } else {
        companion_build
    };
    let companion_doc = format!(
        "The lock `{}` holds for the given arguments (made by `#[locked]`): for \
         `is_locked()`, `inspect()` or `force_release()` from outside the function.",
        sig.ident
    );
    sig_out.output = sig.output.clone();
    Ok(quote! {
        #(#attrs)*
        #vis #sig_out #body

        #[doc = #companion_doc]
        #[allow(unused_variables, clippy::needless_pass_by_value)]
        #vis #companion_sig {
            let __shylock_name: ::std::string::String = #name_expr;
            #companion_build
        }
    })
}
