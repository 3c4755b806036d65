// tachyon/tachyon.hpp — the whole public API.
#pragma once

#include <tachyon/bus.hpp>
#include <tachyon/clock.hpp>
#include <tachyon/config.hpp>
#include <tachyon/health.hpp>
#include <tachyon/histogram.hpp>
#include <tachyon/intercept.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/metrics.hpp>
#include <tachyon/registry.hpp>
#include <tachyon/resilience.hpp>
#include <tachyon/result.hpp>
#include <tachyon/settle.hpp>
#include <tachyon/stop_mode.hpp>
#include <tachyon/subscription.hpp>
#include <tachyon/time.hpp>
