package audit

import (
	"net/http"

	"go.uber.org/zap/zapcore"
)

// Format is how a record is written: native (the default) or OCSF.
type Format string

// Formats of audit_format.
const (
	FormatNative Format = "native"
	FormatOCSF   Format = "ocsf"
)

// OCSF constants of the API Activity class (OCSF 1.x, class 6003 in the
// Application Activity category 6).
const (
	OCSFVersion     = "1.8.0"
	ocsfCategoryUID = 6
	ocsfClassUID    = 6003
)

// Marshaler returns rec in format f; both carry the same facts.
func (r *Record) Marshaler(f Format) zapcore.ObjectMarshaler {
	if f == FormatOCSF {
		return (*ocsfRecord)(r)
	}
	return r
}

// ocsfRecord writes a Record as an OCSF API Activity event. Facts OCSF has
// no attribute for (decision, route, binding, token id, upstream status,
// duration) go under unmapped, as the schema intends.
type ocsfRecord Record

// ocsfActivity maps the HTTP method to API Activity's activity_id.
func ocsfActivity(method string) int {
	switch method {
	case http.MethodPost:
		return 1 // Create
	case http.MethodGet, http.MethodHead:
		return 2 // Read
	case http.MethodPut, http.MethodPatch:
		return 3 // Update
	case http.MethodDelete:
		return 4 // Delete
	}
	return 99 // Other
}

// ocsfStatus is status_id: 1 Success when the request went through
// (allow, public, would_deny), 2 Failure when the gate refused it.
func ocsfStatus(d Decision) int {
	if d == DecisionDeny {
		return 2
	}
	return 1
}

// ocsfSeverity is severity_id: 1 Informational, 2 Low for a denial, 3
// Medium when the gate itself failed.
func (r *ocsfRecord) severity() int {
	switch {
	case r.Reason == ReasonInternal:
		return 3
	case r.Decision == DecisionDeny || r.Decision == DecisionWouldDeny:
		return 2
	}
	return 1
}

type objFunc func(zapcore.ObjectEncoder) error

func (f objFunc) MarshalLogObject(enc zapcore.ObjectEncoder) error { return f(enc) }

// MarshalLogObject writes the OCSF event.
func (r *ocsfRecord) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	activity := ocsfActivity(r.Method)
	enc.AddInt("activity_id", activity)
	enc.AddInt("category_uid", ocsfCategoryUID)
	enc.AddInt("class_uid", ocsfClassUID)
	enc.AddInt("type_uid", ocsfClassUID*100+activity)
	enc.AddInt("severity_id", r.severity())
	enc.AddInt64("time", r.Time.UnixMilli())
	enc.AddInt("status_id", ocsfStatus(r.Decision))
	enc.AddString("status_detail", string(r.Reason))
	_ = enc.AddObject("metadata", objFunc(r.metadata))
	_ = enc.AddObject("actor", objFunc(r.actor))
	_ = enc.AddObject("api", objFunc(r.api))
	_ = enc.AddObject("http_request", objFunc(r.httpRequest))
	_ = enc.AddObject("http_response", objFunc(func(e zapcore.ObjectEncoder) error {
		e.AddInt("code", r.Status)
		return nil
	}))
	_ = enc.AddObject("src_endpoint", objFunc(func(e zapcore.ObjectEncoder) error {
		e.AddString("ip", r.RemoteIP)
		return nil
	}))
	if r.TraceID != "" {
		_ = enc.AddObject("trace", objFunc(func(e zapcore.ObjectEncoder) error {
			e.AddString("uid", r.TraceID)
			return nil
		}))
	}
	return enc.AddObject("unmapped", objFunc(r.unmapped))
}

// traceProfile lists the OCSF profile whose attribute (trace) a record
// with a trace id uses.
var traceProfile = zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
	a.AppendString("trace")
	return nil
})

func (r *ocsfRecord) metadata(e zapcore.ObjectEncoder) error {
	e.AddString("version", OCSFVersion)
	if r.TraceID != "" {
		_ = e.AddArray("profiles", traceProfile)
	}
	return e.AddObject("product", objFunc(func(p zapcore.ObjectEncoder) error {
		p.AddString("name", "tenantgate")
		p.AddString("vendor_name", "tenantgate")
		return nil
	}))
}

func (r *ocsfRecord) actor(e zapcore.ObjectEncoder) error {
	err := e.AddObject("user", objFunc(func(u zapcore.ObjectEncoder) error {
		u.AddString("uid", r.UserID)
		return u.AddObject("org", objFunc(func(o zapcore.ObjectEncoder) error {
			o.AddString("uid", r.TenantID)
			return nil
		}))
	}))
	if r.Issuer != "" {
		err = e.AddObject("idp", objFunc(func(i zapcore.ObjectEncoder) error {
			i.AddString("name", r.Issuer)
			return nil
		}))
	}
	return err
}

func (r *ocsfRecord) api(e zapcore.ObjectEncoder) error {
	e.AddString("operation", r.Method)
	return e.AddObject("request", objFunc(func(q zapcore.ObjectEncoder) error {
		q.AddString("uid", r.RequestID)
		return nil
	}))
}

func (r *ocsfRecord) httpRequest(e zapcore.ObjectEncoder) error {
	e.AddString("http_method", r.Method)
	return e.AddObject("url", objFunc(func(u zapcore.ObjectEncoder) error {
		u.AddString("path", r.Path)
		return nil
	}))
}

func (r *ocsfRecord) unmapped(e zapcore.ObjectEncoder) error {
	e.AddString("decision", string(r.Decision))
	e.AddString("route", r.Route)
	e.AddString("binding", r.Binding)
	e.AddString("token_id", r.TokenID)
	if r.ClientRequestID != "" {
		e.AddString("client_request_id", r.ClientRequestID)
	}
	e.AddInt("upstream_status", r.UpstreamStatus)
	e.AddFloat64("duration_ms", r.DurationMS)
	return nil
}
