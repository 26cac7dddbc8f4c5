-- The seed's older name for the driver constructor: driver_helper.init(name, template).
local Driver = require "st.driver"
return {init = function(name, template) return Driver(name, template) end}
