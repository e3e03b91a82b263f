package api_test

import "github.com/tenantgate/tenantgate/backend/api"

func apiRoutes() []api.Route { return api.Routes() }
