package store

// The tally columns of a window joined with contributions (wc: agent_id,
// signal, r) grouped per agent; d = sign(signal). Written in SQL that
// SQLite and PostgreSQL both run.
const agentTallyColumns = `count(wc.agent_id),
	coalesce(sum(CASE WHEN wc.signal <> 0 THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN wc.signal * wc.r > 0 THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN wc.signal > 0 THEN wc.r WHEN wc.signal < 0 THEN -wc.r ELSE 0 END), 0),
	coalesce(sum(CASE WHEN wc.signal <> 0 THEN wc.r * wc.r ELSE 0 END), 0)`

// ensembleWindow selects the newest `lookback` scored predictions of one
// ensemble (args: tenant, ensemble, lookback); the partial index
// predictions_scored serves it.
const ensembleWindow = `win AS (
	SELECT prediction_id, action, realized_return AS r FROM predictions
	WHERE tenant_id = ? AND ensemble_id = ? AND realized_return IS NOT NULL
	ORDER BY created_at DESC, prediction_id DESC LIMIT ?)`

// The window SQL, shared by both engines (? placeholders; PostgreSQL's
// copies are rewritten to $n once, in postgres_window.go).
const (
	ensembleTallySQL = `WITH ` + ensembleWindow + `
		SELECT count(*),
			coalesce(sum(CASE WHEN action IN ('buy', 'sell') THEN 1 ELSE 0 END), 0),
			coalesce(sum(CASE WHEN (action = 'buy' AND r > 0) OR (action = 'sell' AND r < 0) THEN 1 ELSE 0 END), 0),
			coalesce(sum(CASE action WHEN 'buy' THEN r WHEN 'sell' THEN -r ELSE 0 END), 0),
			coalesce(sum(CASE WHEN action IN ('buy', 'sell') THEN r * r ELSE 0 END), 0)
		FROM win`
	agentTalliesSQL = `WITH ` + ensembleWindow + `,
		wc AS (SELECT c.agent_id, c.signal, win.r FROM win JOIN contributions c ON c.tenant_id = ? AND c.prediction_id = win.prediction_id)
		SELECT a.agent_id, a.agent_type, a.weight, a.created_at, ` + agentTallyColumns + `
		FROM agents a LEFT JOIN wc ON wc.agent_id = a.agent_id
		WHERE a.tenant_id = ? AND a.ensemble_id = ?
		GROUP BY a.agent_id, a.agent_type, a.weight, a.created_at
		ORDER BY a.created_at, a.agent_id`
	rankingsSQL = `WITH win AS (
			SELECT ensemble_id, prediction_id, r FROM (
				SELECT ensemble_id, prediction_id, realized_return AS r,
					row_number() OVER (PARTITION BY ensemble_id ORDER BY created_at DESC, prediction_id DESC) AS rn
				FROM predictions WHERE tenant_id = ? AND realized_return IS NOT NULL) ranked
			WHERE rn <= ?),
		wc AS (SELECT win.ensemble_id, c.agent_id, c.signal, win.r FROM win JOIN contributions c ON c.tenant_id = ? AND c.prediction_id = win.prediction_id)
		SELECT a.ensemble_id, a.agent_id, a.agent_type, a.weight, a.created_at, ` + agentTallyColumns + `
		FROM agents a LEFT JOIN wc ON wc.ensemble_id = a.ensemble_id AND wc.agent_id = a.agent_id
		WHERE a.tenant_id = ?
		GROUP BY a.ensemble_id, a.agent_id, a.agent_type, a.weight, a.created_at
		ORDER BY a.ensemble_id, a.agent_id`
)
