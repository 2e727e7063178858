//! Credentials and region from the AWS shared config files (`~/.aws/credentials`, `~/.aws/config`), which object_store
//! does not read itself. Only the static-key subset is supported: SSO and `credential_process` profiles are not.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProfileSettings {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Settings of `$AWS_PROFILE` (or `default`), merged from the credentials file (which wins) and the config file.
pub fn load_profile() -> ProfileSettings {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let read = |p: Option<PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    let credentials = read(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
    let config = read(file("AWS_CONFIG_FILE", "config"));
    settings_for(&profile, &credentials, &config)
}

fn settings_for(profile: &str, credentials: &str, config: &str) -> ProfileSettings {
    let creds = parse_ini(credentials).remove(profile).unwrap_or_default();
    // In the config file, profiles other than `default` are written `[profile NAME]`.
    let config_section = if profile == "default" { "default".to_string() } else { format!("profile {profile}") };
    let conf = parse_ini(config).remove(&config_section).unwrap_or_default();
    let get = |key: &str| creds.get(key).or_else(|| conf.get(key)).cloned();
    ProfileSettings {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: get("region"),
        endpoint_url: get("endpoint_url"),
    }
}

fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_string());
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            sections.entry(section.clone()).or_default().insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_wins_over_config_and_profiles_are_prefixed_in_config() {
        let credentials = "[default]\naws_access_key_id = AK1\naws_secret_access_key=SK1\n\n[work]\naws_access_key_id=AK2\n";
        let config = "[default]\nregion = eu-west-1\n[profile work]\nregion=us-east-2\naws_access_key_id = IGNORED\n\
                      endpoint_url = http://127.0.0.1:9000\n";
        let d = settings_for("default", credentials, config);
        assert_eq!(d.access_key_id.as_deref(), Some("AK1"));
        assert_eq!(d.secret_access_key.as_deref(), Some("SK1"));
        assert_eq!(d.region.as_deref(), Some("eu-west-1"));
        let w = settings_for("work", credentials, config);
        assert_eq!(w.access_key_id.as_deref(), Some("AK2"));
        assert_eq!(w.secret_access_key, None);
        assert_eq!(w.region.as_deref(), Some("us-east-2"));
        assert_eq!(w.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(settings_for("missing", credentials, config), ProfileSettings::default());
    }
}
