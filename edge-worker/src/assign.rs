//! `GET /v1/assign` and `POST /v1/assign`: answers from the cached config set through
//! `litmus_shared::assign`, so the edge and the control plane agree bit for bit.

use std::borrow::Cow;
use std::rc::Rc;

use litmus_shared::exposures::ExposureGroup;
use litmus_shared::{Attributes, ConfigSet, Status, StickyDoc, assign_sticky, assign_with};
use serde_json::Value;
use worker::{Context, Request, Response};

use crate::body;
use crate::config_cache;
use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::render::{self, Entry};
use crate::state::{AppState, Vars};

/// Attributes the platform knows about a request itself: Cloudflare's `request.cf` name, and the
/// attribute name targeting uses. Behind Cloudflare these come from the request, never from the
/// client (`CLIENT_ATTRIBUTES=trust` says otherwise): a client could claim any country.
pub const PLATFORM_ATTRIBUTES: [(&str, &str); 9] = [
    ("country", "country"),
    ("continent", "continent"),
    ("region", "region"),
    ("regionCode", "region_code"),
    ("city", "city"),
    ("postalCode", "postal_code"),
    ("timezone", "timezone"),
    ("asn", "asn"),
    ("colo", "colo"),
];

const COOKIE: &str = "litmus_uid";
/// A browser's sticky assignments (`litmus_shared::sticky`), percent-encoded JSON.
const STICKY_COOKIE: &str = "litmus_sticky";
const COOKIE_MAX_AGE: u32 = 31_536_000;
const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_EXPERIMENTS: usize = 100;

/// What the caller asked, whichever way it came in.
#[derive(Debug)]
pub struct Query {
    /// `None` = not given: the browser's cookie, or a fresh id. An explicit `""` is refused, as
    /// the control plane refuses it (`validate::unit_id`): its exposures could never be stored.
    unit_id: Option<String>,
    attributes: Attributes,
    /// `None` = every running experiment.
    experiments: Option<Vec<String>>,
    /// `false` (`expose=false`): answer without logging exposures, for clients that log them
    /// through `/v1/events` when they actually show a variant.
    pub expose: bool,
    /// `sticky` of `POST /v1/assign`: the unit's sticky assignments, kept by the caller.
    sticky: Option<StickyDoc>,
    /// `min_version`: the `config_version` of an answer this client already had. It is not
    /// answered from an older set if this isolate can help it (`config_cache::at_least`).
    pub min_version: Option<i64>,
}

impl Default for Query {
    fn default() -> Self {
        Self { unit_id: None, attributes: Attributes::new(), experiments: None, expose: true, sticky: None, min_version: None }
    }
}

impl Query {
    /// Replaces the client's values of [`PLATFORM_ATTRIBUTES`] with the request's own (`read`:
    /// the `request.cf` member of that name); a member the request lacks removes the client's
    /// value too: on Cloudflare, absent means unknown, not "ask the client".
    pub fn use_platform_attributes(&mut self, read: impl Fn(&str) -> Option<Value>) {
        for (member, name) in PLATFORM_ATTRIBUTES {
            match read(member) {
                Some(v) => {
                    self.attributes.insert(name.to_owned(), v);
                }
                None => {
                    self.attributes.remove(name);
                }
            }
        }
    }
}

/// Whether any experiment of `set` targets on a platform attribute: only then does an answer
/// read the request's own (the fast route then reads `request.cf`, which costs a little).
/// Computed once per set, with its rendered fragments.
pub fn reads_platform(set: Option<&Rc<ConfigSet>>, keys: &litmus_shared::signing::Keys) -> bool {
    set.is_some_and(|s| render::Fragments::of(s, keys).reads_platform)
}

/// Whether a targeting condition names one of [`PLATFORM_ATTRIBUTES`] anywhere (as a key: both
/// dialects name attributes by object keys).
pub fn names_platform(condition: &Value) -> bool {
    match condition {
        Value::Object(map) => map.iter().any(|(k, v)| PLATFORM_ATTRIBUTES.iter().any(|(_, name)| k == name) || names_platform(v)),
        Value::Array(items) => items.iter().any(names_platform),
        _ => false,
    }
}

/// The `request.cf` member `name` as an attribute.
pub fn cf_member(cf: &worker::wasm_bindgen::JsValue, name: &str) -> Option<Value> {
    let v = worker::js_sys::Reflect::get(cf, &name.into()).ok()?;
    // Every member read is text but `asn`, a whole number.
    v.as_string().map(Value::String).or_else(|| v.as_f64().map(|n| Value::from(n as i64)))
}

fn version_error() -> ApiError {
    ApiError::validation("min_version", "must be a non-negative integer: the config_version of an earlier answer")
}

/// Decimal digits only (no sign, no `+`), as an `i64`: by hand, since `str::parse` brings its
/// own integer parser into the upload for this one field.
fn parse_version(value: &str) -> Option<i64> {
    litmus_shared::validate::digits(value)
}

fn parse_expose(value: &str) -> ApiResult<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::validation("expose", "must be true or false")),
    }
}

pub async fn get(req: &Request, state: &AppState, ctx: &Context) -> ApiResult<Response> {
    let url = req.inner().url();
    let query = url.split_once('?').map_or("", |(_, q)| q);
    respond(req, state, ctx, parse_query(query)?).await
}

/// The query string of `GET /v1/assign`: `experiment` (repeatable), `unit_id`, `expose`; every
/// other parameter is an attribute.
pub fn parse_query(query: &str) -> ApiResult<Query> {
    let mut q = Query::default();
    let mut keys = Vec::new();
    for (name, value) in query_pairs(query) {
        match name.as_ref() {
            "experiment" => keys.push(value.into_owned()),
            "unit_id" => q.unit_id = Some(value.into_owned()),
            "expose" => q.expose = parse_expose(&value)?,
            "min_version" => q.min_version = Some(parse_version(&value).ok_or_else(version_error)?),
            "" => {}
            // Repeated attributes become a list, which the targeting language treats as "any of".
            attr => match q.attributes.get_mut(attr) {
                Some(Value::Array(items)) => items.push(Value::String(value.into_owned())),
                Some(prev) => *prev = Value::Array(vec![prev.take(), Value::String(value.into_owned())]),
                None => {
                    q.attributes.insert(attr.to_owned(), Value::String(value.into_owned()));
                }
            },
        }
    }
    if !keys.is_empty() {
        q.experiments = Some(keys);
    }
    Ok(q)
}

/// `form_urlencoded::parse`'s pairs, borrowed from the query when there is nothing to decode (no
/// `%`, no `+`: the usual case, which then needs neither a copy nor a UTF-8 check).
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
        if pair.bytes().any(|b| b == b'%' || b == b'+') {
            let mut decoded = form_urlencoded::parse(pair.as_bytes());
            decoded.next().unwrap_or((Cow::Borrowed(""), Cow::Borrowed("")))
        } else {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (Cow::Borrowed(name), Cow::Borrowed(value))
        }
    })
}

pub async fn post(req: &mut Request, state: &AppState, ctx: &Context) -> ApiResult<Response> {
    let q = parse_body(body::json(req, MAX_BODY_BYTES).await?)?;
    respond(req, state, ctx, q).await
}

/// The JSON body of `POST /v1/assign`.
pub fn parse_body(body: Value) -> ApiResult<Query> {
    let Value::Object(mut obj) = body else {
        return Err(ApiError::validation("", "expected a JSON object"));
    };
    let unit_id = match obj.remove("unit_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::validation("unit_id", "must be a string")),
    };
    let attributes = match obj.remove("attributes") {
        None | Some(Value::Null) => Attributes::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::validation("attributes", "must be an object")),
    };
    let experiments = match obj.remove("experiments") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(ApiError::validation(format!("experiments[{i}]"), "must be a string")),
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        Some(_) => return Err(ApiError::validation("experiments", "must be an array of experiment keys")),
    };
    let expose = match obj.remove("expose") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ApiError::validation("expose", "must be true or false")),
    };
    let sticky = match obj.remove("sticky") {
        None | Some(Value::Null) => None,
        Some(v) => Some(StickyDoc::from_json(&v).ok_or_else(|| {
            ApiError::validation("sticky", "must be the `sticky` document of an earlier answer: {\"unit_id\": …, \"assignments\": {…}}")
        })?),
    };
    let min_version = match obj.remove("min_version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().filter(|v| *v >= 0).ok_or_else(version_error)?),
    };
    Ok(Query { unit_id, attributes, experiments, expose, sticky, min_version })
}

/// An answer, ready to send: what both the workers-rs route and the JavaScript fast path
/// (`fast.rs`) turn into a response.
/// The body is written into the caller's buffer, which the fast path reuses across answers.
pub struct Prepared {
    pub status: u16,
    /// The queue message logging this answer's exposures, if any.
    pub exposures: Option<String>,
    /// Headers beyond `content-type`: `cache-control`, and `set-cookie` for a minted unit id.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
}

async fn respond(req: &Request, state: &AppState, ctx: &Context, mut q: Query) -> ApiResult<Response> {
    let cookie = req.headers().get("cookie").ok().flatten();
    let https = req.inner().url().starts_with("https:");
    let set = config_cache::at_least(state, q.min_version).await;
    if state.platform_attributes && reads_platform(set.as_ref(), &state.signing_keys) {
        let cf = worker::js_sys::Reflect::get(req.inner(), &"cf".into()).unwrap_or_default();
        // No `cf` at all: not behind Cloudflare, the client's values stand.
        if cf.is_object() {
            q.use_platform_attributes(|name| cf_member(&cf, name));
        }
    }
    let mut body = Vec::new();
    let prepared = prepare(state, set.as_ref(), q, cookie.as_deref(), https, events::now_ms(), &mut body)?;
    if let Some(message) = prepared.exposures {
        events::enqueue(state, ctx, vec![message], false).await?;
    }
    let mut resp = Response::builder().with_status(prepared.status).fixed(body);
    let headers = resp.headers_mut();
    headers.set("content-type", "application/json")?;
    for (name, value) in &prepared.headers {
        headers.append(name, value)?;
    }
    Ok(resp)
}

/// Whether the answer to `q` can depend on the `Cookie` header: a unit id to find there, or a
/// sticky experiment whose document the browser keeps there. Otherwise the fast path need not
/// read the request's headers at all.
pub fn needs_cookie(set: Option<&Rc<ConfigSet>>, q: &Query) -> bool {
    q.unit_id.is_none() || (q.sticky.is_none() && has_sticky(set))
}

fn has_sticky(set: Option<&Rc<ConfigSet>>) -> bool {
    set.is_some_and(|s| s.experiments.iter().any(|e| e.is_sticky()))
}

/// Everything about an answer that needs no I/O: the unit (given, from the cookie, or minted),
/// the checks, the assignments, the body (written into `body`) and the exposures message, logged
/// at `now_ms`.
pub fn prepare(
    vars: &Vars,
    set: Option<&Rc<ConfigSet>>,
    q: Query,
    cookie: Option<&str>,
    https: bool,
    now_ms: f64,
    body: &mut Vec<u8>,
) -> ApiResult<Prepared> {
    let (unit_id, minted) = match q.unit_id {
        Some(id) => (id, false),
        None => match cookie.and_then(cookie_id) {
            Some(id) => (id.to_owned(), false),
            None => (events::random_uuid(), true),
        },
    };
    // The shared rule first (non-empty, storable, ≤ 512 bytes: the control plane's), then this
    // deployment's own limit, which may only be lower.
    litmus_shared::validate::unit_id(&unit_id).map_err(|e| ApiError::validation(e.field, e.message))?;
    if unit_id.len() > vars.max_unit_id_bytes {
        return Err(ApiError::validation("unit_id", format!("must be at most {} bytes", vars.max_unit_id_bytes)));
    }
    let keys = match q.experiments {
        Some(mut keys) => {
            dedup_in_order(&mut keys);
            if keys.len() > MAX_EXPERIMENTS {
                return Err(ApiError::validation(
                    "experiments",
                    format!("at most {MAX_EXPERIMENTS} experiments per request"),
                ));
            }
            Some(keys)
        }
        None => None,
    };

    // Sticky assignments: the caller's document, else the browser's cookie while the set has a
    // sticky experiment (its document then matters; without one, answers of A/B tests stay as
    // they were, and the fast path need not read the cookie of a request that names its unit).
    let from_caller = q.sticky.is_some();
    let sticky_set = has_sticky(set);
    let doc = q.sticky.or_else(|| cookie.filter(|_| sticky_set).and_then(sticky_cookie));
    let wanted = doc.is_some() || sticky_set;
    // Only a document this deployment signed counts: a client cannot pick its own variant.
    let doc = doc.and_then(|d| d.verified(&vars.signing_keys));
    let mut sticky = wanted.then(|| StickyDoc::for_unit(doc, &unit_id));
    let mut sticky_changed = false;
    let assignments = evaluate(set.map(|s| &**s), keys.as_deref(), &unit_id, &q.attributes, sticky.as_mut(), &mut sticky_changed);
    // One message for all the exposures of this answer; the request's attributes travel with
    // them once, for segment breakdowns centrally.
    let exposures = if q.expose {
        let (mut exposed, mut versions) = (Vec::new(), Vec::new());
        for a in &assignments {
            if let Entry::Known(a, _) = a
                && a.in_experiment
            {
                exposed.push([a.experiment, a.variant_key]);
                versions.push(a.version);
            }
        }
        if exposed.is_empty() {
            None
        } else {
            let (id, ts) = (crate::ids::event_id(now_ms), crate::ids::timestamp(now_ms));
            let attributes = events::storable_segment(&q.attributes).then_some(&q.attributes);
            let message = ExposureGroup { id: &id, unit_id: &unit_id, ts: &ts, attributes, exposures: exposed };
            let mut text = serde_json::to_string(&message).map_err(|e| ApiError::internal("serializing exposures", e))?.into_bytes();
            // `"versions":[…]` by hand (see `ExposureGroup`): the config version of each exposure.
            text.pop();
            text.extend_from_slice(br#","versions":["#);
            for (i, v) in versions.iter().enumerate() {
                if i > 0 {
                    text.push(b',');
                }
                crate::render::push_i64(&mut text, *v);
            }
            text.extend_from_slice(b"]}");
            Some(String::from_utf8(text).map_err(|e| ApiError::internal("serializing exposures", e))?)
        }
    } else {
        None
    };
    if let Some(doc) = sticky.as_mut() {
        doc.sign(&vars.signing_keys);
    }
    render::answer(body, &unit_id, set, &assignments, sticky.as_ref(), &vars.signing_keys);

    // Answers are per unit: no shared cache may keep them.
    let mut headers = vec![("cache-control", Cow::Borrowed("private, no-store"))];
    if minted {
        let secure = if https { "; Secure" } else { "" };
        headers.push(("set-cookie", format!("{COOKIE}={unit_id}; Path=/; Max-Age={COOKIE_MAX_AGE}; SameSite=Lax{secure}").into()));
    }
    if let Some(doc) = sticky.as_ref().filter(|_| sticky_changed && !from_caller) {
        let secure = if https { "; Secure" } else { "" };
        let json = doc.to_json();
        let value = form_encode(&json);
        headers.push(("set-cookie", format!("{STICKY_COOKIE}={value}; Path=/; Max-Age={COOKIE_MAX_AGE}; SameSite=Lax{secure}").into()));
    }
    Ok(Prepared { status: 200, exposures, headers })
}

/// `form_urlencoded::byte_serialize`, by hand: its table of every `%XX` costs the upload a
/// third of a KiB.
fn form_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}

fn evaluate<'a>(
    set: Option<&'a ConfigSet>,
    keys: Option<&'a [String]>,
    unit_id: &str,
    attributes: &Attributes,
    mut sticky: Option<&mut StickyDoc>,
    changed: &mut bool,
) -> Vec<Entry<'a>> {
    let missing = |experiment: &'a str, reason| Entry::Missing { experiment, reason };
    let mut assign_one = |e: &'a litmus_shared::Experiment, groups| match sticky.as_deref_mut() {
        Some(doc) => {
            let (a, c) = assign_sticky(e, unit_id, attributes, groups, doc);
            *changed |= c;
            a
        }
        None => assign_with(e, unit_id, attributes, groups),
    };
    match (set, keys) {
        (Some(set), Some(keys)) => keys
            .iter()
            // The index, not only the experiment: the body's fragments are kept by index.
            .map(|k| match set.position(k) {
                Some(i) => Entry::Known(assign_one(&set.experiments[i], &set.saved_groups), i),
                None => missing(k, "unknown_experiment"),
            })
            .collect(),
        (Some(set), None) => set
            .experiments
            .iter()
            .enumerate()
            .filter(|(_, e)| e.status == Status::Running)
            .map(|(i, e)| Entry::Known(assign_one(e, &set.saved_groups), i))
            .collect(),
        (None, Some(keys)) => keys.iter().map(|k| missing(k, "no_config")).collect(),
        (None, None) => Vec::new(),
    }
}

fn dedup_in_order(keys: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    keys.retain(|k| seen.insert(k.clone()));
}

/// The `litmus_uid` cookie of a `Cookie` header, if it holds something we could have minted;
/// anything else (tampered, oversized) is ignored and replaced.
fn cookie_id(header: &str) -> Option<&str> {
    header.split(';').filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=')).find(|v| is_cookie_id(v))
}

/// The `litmus_sticky` cookie's document; anything unreadable is ignored (and replaced).
fn sticky_cookie(header: &str) -> Option<StickyDoc> {
    let raw = header.split(';').find_map(|c| c.trim().strip_prefix(STICKY_COOKIE)?.strip_prefix('='))?;
    // byte_serialize encoded `&` and `=` too, so the whole value parses back as one name.
    let (json, _) = form_urlencoded::parse(raw.as_bytes()).next()?;
    StickyDoc::from_json(&serde_json::from_str(&json).ok()?)
}

fn is_cookie_id(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_ids() {
        assert!(is_cookie_id("0b5e4c3a-8f1d-4d2b-9c7e-1a2b3c4d5e6f"));
        assert!(!is_cookie_id(""));
        assert!(!is_cookie_id("a b"));
        assert!(!is_cookie_id(&"x".repeat(65)));
    }

    #[test]
    fn cookie_headers() {
        assert_eq!(cookie_id("a=1; litmus_uid=abc-123; b=2"), Some("abc-123"));
        assert_eq!(cookie_id("litmus_uid=bad value; litmus_uid=good"), Some("good"));
        assert_eq!(cookie_id("litmus_uidx=abc"), None);
        assert_eq!(cookie_id(""), None);
    }

    #[test]
    fn sticky_cookies_round_trip() {
        let doc = StickyDoc { unit_id: "ü; x=1&y".into(), assignments: vec![("five__0".to_owned(), "m 3;=&".to_owned())], sig: Some(u64::MAX) };
        let json = doc.to_json();
        let value: String = form_urlencoded::byte_serialize(json.as_bytes()).collect();
        assert_eq!(form_encode(&json), value);
        for text in ["", " ", "a b+c", "ü€🙂", "\u{0}\u{7f}~!'()%;=&", "{\"k\":[1,2]}"] {
            assert_eq!(form_encode(text), form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>(), "{text}");
        }
        // Only characters a cookie value may hold.
        assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b"%*-._+".contains(&b)), "{value}");
        assert_eq!(sticky_cookie(&format!("a=1; {STICKY_COOKIE}={value}; litmus_uid=x")), Some(doc));
        assert_eq!(sticky_cookie("litmus_sticky=%7Bnot json"), None);
        assert_eq!(sticky_cookie("litmus_uid=x"), None);
    }

    #[test]
    fn sticky_documents_in_bodies() {
        let body = serde_json::json!({"unit_id": "u1", "sticky": {"unit_id": "u1", "assignments": {"five__0": "m3"}}});
        let q = parse_body(body).expect("parses");
        assert_eq!(q.sticky.map(|d| d.assignments.len()), Some(1));
        let bad = parse_body(serde_json::json!({"sticky": {"assignments": []}})).expect_err("refused");
        assert_eq!(bad.field.as_deref(), Some("sticky"));
    }

    #[test]
    fn queries() {
        let q = parse_query("unit_id=u%201&experiment=a&experiment=b&country=US&tag=x&tag=y&expose=false&=z").expect("parses");
        assert_eq!(q.unit_id.as_deref(), Some("u 1"));
        assert_eq!(q.experiments, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(!q.expose);
        assert_eq!(Value::Object(q.attributes), serde_json::json!({"country": "US", "tag": ["x", "y"]}));
        assert_eq!(parse_query("expose=maybe").expect_err("refused").field.as_deref(), Some("expose"));
        let empty = parse_query("").expect("parses");
        assert!(empty.unit_id.is_none() && empty.experiments.is_none() && empty.expose);
    }

    #[test]
    fn query_pairs_are_form_urlencodeds() {
        for q in ["", "a=1&b=2", "a=1&&b", "=x&y=&z", "a=%20%2B+b&c%3D=d=e", "k=%FF%FE&%C3%BC=%E6%97%A5", "u=a%2", "x=1&x=2&x", "&&&", "p+q=r+s"] {
            let ours: Vec<(String, String)> = query_pairs(q).map(|(n, v)| (n.into_owned(), v.into_owned())).collect();
            let theirs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).map(|(n, v)| (n.into_owned(), v.into_owned())).collect();
            assert_eq!(ours, theirs, "{q:?}");
        }
    }

    #[test]
    fn platform_attributes_replace_the_clients() {
        let mut q = parse_query("unit_id=u&country=US&country=CA&city=Paris&plan=pro").expect("parses");
        let cf = serde_json::json!({"country": "DE", "asn": 3320});
        q.use_platform_attributes(|name| cf.get(name).cloned());
        // The request's country and asn; the client's city dropped (the request has none); the
        // rest is the client's.
        assert_eq!(Value::Object(q.attributes), serde_json::json!({"country": "DE", "asn": 3320, "plan": "pro"}));
    }

    #[test]
    fn conditions_naming_platform_attributes() {
        use serde_json::json;
        assert!(names_platform(&json!({"country": {"in": ["US"]}})));
        assert!(names_platform(&json!({"$and": [{"plan": "pro"}, {"$or": [{"asn": 3320}, {"city": {"$regex": "^B"}}]}]})));
        assert!(!names_platform(&json!({"plan": "country", "tags": ["country"]})), "a value is not an attribute");
        assert!(!names_platform(&json!({})));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("0"), Some(0));
        assert_eq!(parse_version("0042"), Some(42));
        assert_eq!(parse_version(&i64::MAX.to_string()), Some(i64::MAX));
        for bad in ["", "-1", "+1", "1.5", "1e3", " 1", "9223372036854775808", "x"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
        assert_eq!(parse_query("min_version=7").expect("parses").min_version, Some(7));
        assert_eq!(parse_query("min_version=-7").expect_err("refused").field.as_deref(), Some("min_version"));
        assert_eq!(parse_body(serde_json::json!({"min_version": 7})).expect("parses").min_version, Some(7));
        assert_eq!(parse_body(serde_json::json!({"min_version": null})).expect("parses").min_version, None);
        for bad in [serde_json::json!(-1), serde_json::json!("7"), serde_json::json!(7.5)] {
            assert_eq!(parse_body(serde_json::json!({"min_version": bad})).expect_err("refused").field.as_deref(), Some("min_version"));
        }
    }

    #[test]
    fn dedups_keeping_order() {
        let mut k = vec!["b".to_owned(), "a".to_owned(), "b".to_owned()];
        dedup_in_order(&mut k);
        assert_eq!(k, ["b", "a"]);
    }
}
