//! The AWS Query protocol's response side: XML bodies for results and errors, in the two dialects
//! the services speak (ELBv2 wraps a `<{Op}Result>` and lists in `<member>`; EC2 has no result
//! wrapper, lowerCamel names and lists in `<item>`).

use std::fmt::Display;

pub const ELB_NS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
pub const EC2_NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Escape text for element content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A tiny append-only XML writer; elements are nested through closures so they always close.
#[derive(Debug, Default)]
pub struct Xml {
    buf: String,
}

impl Xml {
    pub fn new() -> Self {
        Self::default()
    }

    /// `<tag>text</tag>`, text escaped.
    pub fn leaf(&mut self, tag: &str, text: impl Display) -> &mut Self {
        let text = escape(&text.to_string());
        self.buf.push_str(&format!("<{tag}>{text}</{tag}>"));
        self
    }

    /// Bare escaped text (for lists of scalars: `<member>sg-1</member>`).
    pub fn text(&mut self, text: impl Display) -> &mut Self {
        self.buf.push_str(&escape(&text.to_string()));
        self
    }

    /// A leaf only when the value is present.
    pub fn opt<T: Display>(&mut self, tag: &str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.leaf(tag, v);
        }
        self
    }

    /// `<tag>…</tag>` with the content written by `f`.
    pub fn elem(&mut self, tag: &str, f: impl FnOnce(&mut Xml)) -> &mut Self {
        self.buf.push_str(&format!("<{tag}>"));
        f(self);
        self.buf.push_str(&format!("</{tag}>"));
        self
    }

    /// `<tag><item_tag>…</item_tag>…</tag>`, one entry per item.
    pub fn list<T>(
        &mut self,
        tag: &str,
        item_tag: &str,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Xml, T),
    ) -> &mut Self {
        self.elem(tag, |x| {
            for item in items {
                x.elem(item_tag, |x| f(x, item));
            }
        })
    }

    pub fn into_string(self) -> String {
        self.buf
    }
}

/// `<{op}Response xmlns=ELB><{op}Result>inner</{op}Result><ResponseMetadata>…`.
pub fn elb_response(op: &str, inner: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{op}Response xmlns=\"{ELB_NS}\">\
         <{op}Result>{inner}</{op}Result>\
         <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{op}Response>"
    )
}

/// `<{op}Response xmlns=EC2><requestId>…</requestId>inner</{op}Response>`.
pub fn ec2_response(op: &str, inner: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{op}Response xmlns=\"{EC2_NS}\">\
         <requestId>{request_id}</requestId>{inner}</{op}Response>"
    )
}

/// ELBv2 error body; `Type` is `Sender` for 4xx and `Receiver` for 5xx, as AWS writes it.
pub fn elb_error(status: u16, code: &str, message: &str, request_id: &str) -> String {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"{ELB_NS}\">\
         <Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error>\
         <RequestId>{request_id}</RequestId></ErrorResponse>",
        escape(code),
        escape(message)
    )
}

/// EC2 error body (no namespace, `RequestID` in capitals, as EC2 writes it).
pub fn ec2_error(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
         <Message>{}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
        escape(code),
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        let cases = [
            ("plain", "plain"),
            ("a<b>&c", "a&lt;b&gt;&amp;c"),
            ("\"q\" 'a'", "&quot;q&quot; &apos;a&apos;"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want);
        }
    }

    #[test]
    fn writer_nests_and_lists() {
        let mut x = Xml::new();
        x.leaf("Name", "a&b")
            .opt::<&str>("Absent", None)
            .opt("Port", Some(80))
            .list("Subnets", "member", ["s1", "s2"], |x, s| {
                x.leaf("SubnetId", s);
            })
            .elem("State", |x| {
                x.leaf("Code", "active");
            });
        assert_eq!(
            x.into_string(),
            "<Name>a&amp;b</Name><Port>80</Port><Subnets><member><SubnetId>s1</SubnetId></member>\
             <member><SubnetId>s2</SubnetId></member></Subnets><State><Code>active</Code></State>"
        );
    }

    #[test]
    fn envelopes_parse_as_xml() {
        let bodies = [
            elb_response("DescribeTags", "<TagDescriptions/>", "r1"),
            ec2_response("CreateTags", "<return>true</return>", "r2"),
            elb_error(400, "LoadBalancerNotFound", "One <or> more", "r3"),
            ec2_error("InvalidGroup.NotFound", "gone & away", "r4"),
        ];
        for body in bodies {
            let mut reader = quick_xml::Reader::from_str(&body);
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => panic!("{body}: {e}"),
                }
            }
        }
        assert!(elb_error(503, "ServiceUnavailable", "m", "r").contains("<Type>Receiver</Type>"));
        assert!(elb_response("X", "", "r").contains(ELB_NS));
        assert!(ec2_error("C", "m", "rid").contains("<RequestID>rid</RequestID>"));
    }
}
