//! Great-circle distance between two points on the earth.

/// A point in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

/// Mean earth radius (IUGG), in km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Half the earth's circumference: no two points are farther apart.
pub const MAX_DISTANCE_KM: f64 = std::f64::consts::PI * EARTH_RADIUS_KM;

/// Haversine distance in km; well conditioned for the short distances that matter most.
pub fn great_circle_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.longitude - a.longitude).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(latitude: f64, longitude: f64) -> GeoPoint {
        GeoPoint {
            latitude,
            longitude,
        }
    }

    #[test]
    fn berlin_to_munich_is_about_504_km() {
        let d = great_circle_km(point(52.52, 13.405), point(48.137, 11.575));
        assert!((d - 504.0).abs() < 3.0, "{d}");
    }

    #[test]
    fn antipodes_are_half_the_circumference_apart() {
        let d = great_circle_km(point(0.0, 0.0), point(0.0, 180.0));
        assert!((d - MAX_DISTANCE_KM).abs() < 1e-6, "{d}");
        assert_eq!(great_circle_km(point(10.0, 20.0), point(10.0, 20.0)), 0.0);
    }
}
