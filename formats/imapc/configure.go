package imapc

import "github.com/boxsync/boxsync/formats"

var _ formats.Configurable = Driver{}

// SettingNames lists the settings ParseSettings understands, so the CLI can
// take them from the Dovecot config and -o.
func (Driver) SettingNames() []string {
	return []string{
		"imapc_host", "imapc_port", "imapc_user", "imapc_master_user",
		"imapc_password", "imapc_password_file", "imapc_password_env",
		"imapc_sasl_mechanisms", "imapc_oauth2_token_file", "imapc_oauth2_token_command",
		"imapc_ssl", "imapc_ssl_verify", "imapc_features", "imapc_list_prefix",
		"imapc_max_idle_time", "imapc_cmd_timeout", "imapc_connection_retry_count",
		"imapc_connection_retry_interval", "imapc_connections", "imapc_max_bytes_per_sec",
		"imapc_max_msgs_per_sec", "imapc_max_line_length", "imapc_rawlog_dir",
	}
}

// Configure returns a Driver with the given settings.
func (Driver) Configure(settings map[string]string) (formats.Driver, error) {
	s, err := ParseSettings(settings)
	if err != nil {
		return nil, err
	}
	return Driver{Settings: s}, nil
}
