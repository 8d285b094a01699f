// C ABI over ale::ALEInterface for xrl-ale-sys. Every entry point catches C++ exceptions and reports them as a
// message, so nothing unwinds into Rust. GPL-2.0-only, like the ALE it links.
#include "ale/ale_interface.hpp"

#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

namespace {
void put_error(char* err, size_t cap, const char* msg) {
  if (err == nullptr || cap == 0) return;
  std::strncpy(err, msg, cap - 1);
  err[cap - 1] = '\0';
}
}  // namespace

#define XRL_TRY(body)                                   \
  try {                                                 \
    body;                                               \
    return 0;                                           \
  } catch (const std::exception& e) {                   \
    put_error(err, err_cap, e.what());                  \
    return -1;                                          \
  } catch (...) {                                       \
    put_error(err, err_cap, "unknown C++ exception");   \
    return -1;                                          \
  }

extern "C" {

void xrl_ale_quiet() { ale::Logger::setMode(ale::Logger::Error); }

ale::ALEInterface* xrl_ale_new(char* err, size_t err_cap) {
  try {
    return new ale::ALEInterface();
  } catch (const std::exception& e) {
    put_error(err, err_cap, e.what());
  } catch (...) {
    put_error(err, err_cap, "unknown C++ exception");
  }
  return nullptr;
}

void xrl_ale_free(ale::ALEInterface* ale) { delete ale; }

int xrl_ale_set_int(ale::ALEInterface* ale, const char* key, int value, char* err, size_t err_cap) {
  XRL_TRY(ale->setInt(key, value))
}
int xrl_ale_set_float(ale::ALEInterface* ale, const char* key, float value, char* err, size_t err_cap) {
  XRL_TRY(ale->setFloat(key, value))
}
int xrl_ale_set_bool(ale::ALEInterface* ale, const char* key, int value, char* err, size_t err_cap) {
  XRL_TRY(ale->setBool(key, value != 0))
}

// The ROM must be one ALE supports: ALE exits the process on an unknown ROM, so the caller checks its MD5 first.
int xrl_ale_load_rom(ale::ALEInterface* ale, const char* path, char* err, size_t err_cap) {
  XRL_TRY(ale->loadROM(std::filesystem::path(path)))
}

int xrl_ale_reset_game(ale::ALEInterface* ale, char* err, size_t err_cap) { XRL_TRY(ale->reset_game()) }

int xrl_ale_act(ale::ALEInterface* ale, int action, float strength, int* reward, char* err, size_t err_cap) {
  XRL_TRY(*reward = ale->act(static_cast<ale::Action>(action), strength))
}

int xrl_ale_game_over(const ale::ALEInterface* ale, int with_truncation) {
  return ale->game_over(with_truncation != 0) ? 1 : 0;
}
int xrl_ale_game_truncated(const ale::ALEInterface* ale) { return ale->game_truncated() ? 1 : 0; }
int xrl_ale_lives(ale::ALEInterface* ale) { return ale->lives(); }
int xrl_ale_frame_number(const ale::ALEInterface* ale) { return ale->getFrameNumber(); }
int xrl_ale_episode_frame_number(const ale::ALEInterface* ale) { return ale->getEpisodeFrameNumber(); }

// Writes up to `cap` action ids; returns how many the set has.
size_t xrl_ale_minimal_action_set(const ale::ALEInterface* ale, int* out, size_t cap) {
  ale::ActionVect set = ale->getMinimalActionSet();
  for (size_t i = 0; i < set.size() && i < cap; i++) out[i] = static_cast<int>(set[i]);
  return set.size();
}
size_t xrl_ale_legal_action_set(const ale::ALEInterface* ale, int* out, size_t cap) {
  ale::ActionVect set = ale->getLegalActionSet();
  for (size_t i = 0; i < set.size() && i < cap; i++) out[i] = static_cast<int>(set[i]);
  return set.size();
}

void xrl_ale_screen_dims(const ale::ALEInterface* ale, size_t* height, size_t* width) {
  *height = ale->environment->getScreen().height();
  *width = ale->environment->getScreen().width();
}

// `out` holds height × width × 3 bytes (row-major RGB, as ale-py's getScreenRGB()).
void xrl_ale_screen_rgb(const ale::ALEInterface* ale, uint8_t* out) {
  const ale::ALEScreen& screen = ale->environment->getScreen();
  ale->theOSystem->colourPalette().applyPaletteRGB(out, screen.getArray(), screen.width() * screen.height());
}

// `out` holds 3 × height × width bytes: the R, G and B planes one after the other (channels first, for networks).
void xrl_ale_screen_rgb_planar(const ale::ALEInterface* ale, uint8_t* out) {
  const ale::ALEScreen& screen = ale->environment->getScreen();
  const size_t n = screen.width() * screen.height();
  const uint8_t* idx = screen.getArray();
  const ale::ColourPalette& palette = ale->theOSystem->colourPalette();
  uint32_t rgb[256];
  for (int v = 0; v < 256; v++) rgb[v] = palette.getRGB(v);
  for (size_t i = 0; i < n; i++) {
    uint32_t c = rgb[idx[i]];
    out[i] = static_cast<uint8_t>(c >> 16);
    out[n + i] = static_cast<uint8_t>(c >> 8);
    out[2 * n + i] = static_cast<uint8_t>(c);
  }
}

// `out` holds 3 × height × width floats: the R, G and B planes as 0–255, written straight from the palette (one
// pass over the screen instead of bytes first and a conversion after).
void xrl_ale_screen_rgb_planar_f32(const ale::ALEInterface* ale, float* out) {
  const ale::ALEScreen& screen = ale->environment->getScreen();
  const size_t n = screen.width() * screen.height();
  const uint8_t* idx = screen.getArray();
  const ale::ColourPalette& palette = ale->theOSystem->colourPalette();
  float r[256], g[256], b[256];
  for (int v = 0; v < 256; v++) {
    uint32_t c = palette.getRGB(v);
    r[v] = static_cast<float>((c >> 16) & 0xff);
    g[v] = static_cast<float>((c >> 8) & 0xff);
    b[v] = static_cast<float>(c & 0xff);
  }
  for (size_t i = 0; i < n; i++) {
    const uint8_t v = idx[i];
    out[i] = r[v];
    out[n + i] = g[v];
    out[2 * n + i] = b[v];
  }
}

// `out` holds height × width bytes (ALE's grey palette, as ale-py's getScreenGrayscale()).
void xrl_ale_screen_grayscale(const ale::ALEInterface* ale, uint8_t* out) {
  const ale::ALEScreen& screen = ale->environment->getScreen();
  ale->theOSystem->colourPalette().applyPaletteGrayscale(out, screen.getArray(),
                                                        screen.width() * screen.height());
}

// Writes up to `cap` RAM bytes; returns the RAM's size.
size_t xrl_ale_ram(const ale::ALEInterface* ale, uint8_t* out, size_t cap) {
  const ale::ALERAM& ram = ale->getRAM();
  for (size_t i = 0; i < ram.size() && i < cap; i++) out[i] = ram.get(i);
  return ram.size();
}

}  // extern "C"
