"""Precomputed tables of the materials: Fresnel terms and rough-interface transmittance."""

from __future__ import annotations

import numpy as np


TRANSMITTANCE_TABLE_SIZE = 64  # cosines 0, 1/63, ..., 1


def rough_interface(mu: np.ndarray, alpha: float, eta: float, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The fractions of light arriving at cosines `mu` from the side of index 1 that a GGX
    dielectric interface (other side of relative index eta) reflects and transmits: its
    BRDF and BTDF integrated over each hemisphere, as Mitsuba's roughplastic tabulates them.
    What masking loses is neither.

    Over microfacet normals h visible from wi, each reflects F and passes (1 - F) of what
    it receives, and the outgoing ray escapes masking with G1; h is drawn from GGX's inverse CDF on an
    n x n midpoint grid (D(h) cos(h) dh is then uniform), accurate for any roughness."""
    u = (np.arange(n) + 0.5) / n
    cos2_h = (1.0 - u) / (1.0 + (alpha * alpha - 1.0) * u)
    cos_h = np.sqrt(cos2_h)[:, None]
    sin_h = np.sqrt(1.0 - cos2_h)[:, None]
    phi = (2.0 * np.pi * u)[None, :]
    h = np.stack(np.broadcast_arrays(sin_h * np.cos(phi), sin_h * np.sin(phi), cos_h), axis=-1)

    def g1(v_z, v_dot_h):
        tan2 = np.maximum(1.0 - v_z**2, 0.0) / np.maximum(v_z**2, 1e-12)
        return np.where(v_dot_h * v_z > 0, 2.0 / (1.0 + np.sqrt(1.0 + alpha * alpha * tan2)), 0.0)

    reflected, transmitted = np.empty(len(mu)), np.empty(len(mu))
    for i, m in enumerate(np.maximum(mu, 1e-4)):
        wi = np.array([np.sqrt(1.0 - m * m), 0.0, m])
        wi_h = np.maximum(h @ wi, 0.0)
        visible = np.where(wi_h > 0, g1(m, wi_h) * wi_h / (m * h[..., 2]), 0.0)  # D_wi(h) / (D(h) cos(h))
        fresnel = fresnel_dielectric(np.clip(wi_h, 1e-12, 1.0), eta)
        reflected_z = 2.0 * wi_h * h[..., 2] - wi[2]
        reflected[i] = (visible * fresnel * g1(reflected_z, wi_h)).mean()
        sin_t2 = (1.0 - wi_h**2) / eta**2
        cos_t = np.sqrt(np.maximum(1.0 - sin_t2, 0.0))
        refracted_z = -wi[2] / eta + (wi_h / eta - cos_t) * h[..., 2]
        passed = np.where(sin_t2 < 1.0, (1.0 - fresnel) * g1(refracted_z, -cos_t), 0.0)
        transmitted[i] = (visible * passed).mean()
    return np.clip(reflected, 0.0, 1.0), np.clip(transmitted, 0.0, 1.0)


def fresnel_dielectric(cos_i: np.ndarray, eta: float) -> np.ndarray:
    """Unpolarised Fresnel reflectance for light arriving at cos_i > 0 on the side of index 1,
    the other side being of relative index eta."""
    sin_t2 = (1.0 - cos_i**2) / eta**2
    cos_t = np.sqrt(np.maximum(1.0 - sin_t2, 0.0))
    rs = (cos_i - eta * cos_t) / (cos_i + eta * cos_t)
    rp = (eta * cos_i - cos_t) / (eta * cos_i + cos_t)
    return np.where(sin_t2 >= 1.0, 1.0, 0.5 * (rs**2 + rp**2))


def diffuse_fresnel_reflectance(eta: float) -> float:
    """The cosine-weighted hemispherical average of the Fresnel reflectance (Fdr): how much
    of diffuse light inside a coating of relative index 1/eta is reflected back in.
    Integrated numerically (midpoint rule on cos^2, error below 1e-6)."""
    n = 20000
    cos2 = (np.arange(n) + 0.5) / n  # Fdr = integral of F(cos) d(cos^2) over [0, 1]
    return float(fresnel_dielectric(np.sqrt(cos2), eta).mean())
