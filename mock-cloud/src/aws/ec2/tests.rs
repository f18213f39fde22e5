use super::glob;

#[test]
fn glob_matches_like_ec2_filters() {
    let cases = [
        ("*", "anything", true),
        ("1", "1", true),
        ("1", "2", false),
        ("kube*", "kubernetes", true),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("", "", true),
        ("*x", "abc", false),
    ];
    for (p, t, want) in cases {
        assert_eq!(glob(p, t), want, "{p} vs {t}");
    }
}
