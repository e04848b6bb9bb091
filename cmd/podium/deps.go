package main

// Temporary: pins the modules the packages under construction import, so
// that go.mod stays stable while they are written. Removed once every
// import is real.
import (
	_ "github.com/bluenviron/gortsplib/v4"
	_ "github.com/bluenviron/gortsplib/v4/pkg/format"
	_ "github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	_ "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	_ "github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	_ "github.com/chromedp/chromedp"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/gorilla/websocket"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/minio/minio-go/v7/pkg/credentials"
	_ "github.com/pion/interceptor"
	_ "github.com/pion/interceptor/pkg/cc"
	_ "github.com/pion/interceptor/pkg/gcc"
	_ "github.com/pion/interceptor/pkg/nack"
	_ "github.com/pion/interceptor/pkg/twcc"
	_ "github.com/pion/rtcp"
	_ "github.com/pion/rtp"
	_ "github.com/pion/rtp/codecs"
	_ "github.com/pion/turn/v5"
	_ "github.com/pion/webrtc/v4"
	_ "github.com/pion/webrtc/v4/pkg/media/ivfreader"
	_ "github.com/pion/webrtc/v4/pkg/media/oggreader"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/redis/go-redis/v9"
	_ "gopkg.in/yaml.v3"
)

func main() {}
