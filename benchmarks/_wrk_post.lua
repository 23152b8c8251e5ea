-- wrk script: POST the benchmark body (32 floats) to /predict.
local xs = {}
for i = 0, 31 do xs[#xs + 1] = string.format("%.1f", 0.1 * i) end
wrk.method = "POST"
wrk.body = '{"x": [' .. table.concat(xs, ", ") .. ']}'
wrk.headers["Content-Type"] = "application/json"
