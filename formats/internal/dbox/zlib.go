package dbox

import (
	"strings"

	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// ZlibSettingNames are the Dovecot settings of the zlib plugin that the
// sdbox and mdbox drivers take (doveconf paths, as -o spells them).
var ZlibSettingNames = []string{"mail_plugins", "plugin/zlib_save", "plugin/zlib_save_level"}

// ParseZlibSettings reads the zlib plugin's settings from settings; the
// plugin settings may be given as "plugin/zlib_save" or plain "zlib_save".
func ParseZlibSettings(settings map[string]string) (zlib.Settings, error) {
	return zlib.ParseSettings(func(key string) (string, bool) {
		if v, ok := settings[key]; ok {
			return v, true
		}
		v, ok := settings[strings.TrimPrefix(key, "plugin/")]
		return v, ok
	})
}
