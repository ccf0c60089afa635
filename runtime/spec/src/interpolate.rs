//! `${VAR}` and `${VAR:default}` in string values; `$${` stands for a literal `${`.

use marked_yaml::types::MarkedScalarNode;
use marked_yaml::{Marker, Node};

type Failure = (Option<Marker>, String);

pub(crate) fn node(node: &mut Node, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Failure> {
    match node {
        Node::Scalar(s) => {
            if s.as_str().contains('$') {
                let marker = s.span().start().copied();
                let value = string(s.as_str(), env).map_err(|m| (marker, m))?;
                *s = MarkedScalarNode::new(*s.span(), value);
            }
        }
        Node::Mapping(m) => {
            for (_, v) in m.iter_mut() {
                self::node(v, env)?;
            }
        }
        Node::Sequence(seq) => {
            for v in seq.iter_mut() {
                self::node(v, env)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn string(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = t;
        } else if let Some(t) = tail.strip_prefix("${") {
            let end = t.find('}').ok_or_else(|| format!("'{s}' has a '${{' without a closing '}}'"))?;
            let expr = &t[..end];
            let (name, default) = match expr.split_once(':') {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("'${{{expr}}}' does not name an environment variable"));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set and '${{{name}}}' has no default (write '${{{name}:default}}')"
                    ))
                }
            }
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOME_DIR").then(|| "/home/w".to_string())
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(string("${HOME_DIR}/x", &env).unwrap(), "/home/w/x");
        assert_eq!(string("${NOPE:out/wc}", &env).unwrap(), "out/wc");
        assert_eq!(string("${NOPE:}", &env).unwrap(), "");
        assert_eq!(string("a$${b}c", &env).unwrap(), "a${b}c");
        assert_eq!(string("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(string("${HOME_DIR:x}${NOPE:y}", &env).unwrap(), "/home/wy");
    }

    #[test]
    fn errors_say_what_is_missing() {
        assert_eq!(
            string("${NOPE}", &env).unwrap_err(),
            "environment variable NOPE is not set and '${NOPE}' has no default (write '${NOPE:default}')"
        );
        assert!(string("${NOPE", &env).unwrap_err().contains("without a closing"));
        assert!(string("${a-b}", &env).unwrap_err().contains("does not name"));
    }
}
